#!/bin/sh
# Makes the certificates the TLS tests use, with the openssl command, in DIR:
#   ca.pem ca.key            a test CA
#   server.pem server.key    localhost, 127.0.0.1 and ::1, signed by the CA
#   expired.pem              the same name, expired yesterday (key: server.key)
#   other.pem                signed by the CA for other.example only (key: server.key)
#   self.pem self.key        self-signed for localhost
#   client.pem client.key    a client certificate signed by the CA
#   rogue.pem rogue.key      a client certificate from a CA nobody trusts
# and, with a second argument "rsa", only (to a DIR made before):
#   rsa.pem rsa.key          localhost again with an RSA key (2048 bits), for
#                            the TLS 1.2 suites that need one; apart, as
#                            making the key takes a while
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
sign() { # sign NAME KEY SUBJECT SAN DAYS CA CAKEY
    openssl req -new -key "$2" -subj "$3" -out "$1.csr" 2>/dev/null
    printf 'subjectAltName=%s\n' "$4" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$6" -CAkey "$7" -CAcreateserial -days "$5" \
        -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
if [ "${2:-}" = rsa ]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key 2>/dev/null
    sign rsa rsa.key "/CN=localhost" "DNS:localhost,IP:127.0.0.1,IP:::1" 2 ca.pem ca.key
    exit 0
fi
key ca.key
openssl req -x509 -new -key ca.key -subj "/CN=gnezdo test CA" -days 2 -out ca.pem 2>/dev/null
key server.key
sign server server.key "/CN=localhost" "DNS:localhost,IP:127.0.0.1,IP:::1" 2 ca.pem ca.key
sign expired server.key "/CN=localhost" "DNS:localhost,IP:127.0.0.1,IP:::1" -1 ca.pem ca.key
sign other server.key "/CN=other.example" "DNS:other.example" 2 ca.pem ca.key
key self.key
openssl req -x509 -new -key self.key -subj "/CN=localhost" -days 2 \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -out self.pem 2>/dev/null
key client.key
sign client client.key "/CN=gnezdo test client" "DNS:client.example" 2 ca.pem ca.key
key rogue-ca.key
openssl req -x509 -new -key rogue-ca.key -subj "/CN=rogue CA" -days 2 -out rogue-ca.pem 2>/dev/null
key rogue.key
sign rogue rogue.key "/CN=rogue client" "DNS:rogue.example" 2 rogue-ca.pem rogue-ca.key
