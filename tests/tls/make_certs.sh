#!/usr/bin/env bash
# Makes throw-away test certificates in DIR (the unit and integration TLS tests call it; no key
# is ever committed). EC P-256 throughout:
#   ca.pem/ca.key            the test CA
#   server.pem/server.key    localhost, 127.0.0.1 (the default pair)
#   server-enc.key           server.key encrypted (AES-256) with the password "s3cret"
#   other.pem/other.key      other.test and *.wild.test (an SNI pair)
#   client.pem/client.key    a client certificate from the CA (mutual TLS)
#   rogue.pem/rogue.key      a client certificate from another CA (refused)
#   node1, node2 .pem/.key   cluster node certificates from the CA (server and client use)
#   roguenode.pem/.key       a cluster node certificate from the other CA (refused)
#   node1-enc.key            node1.key encrypted (AES-256) with the password "n0de-pw"
set -euo pipefail
dir=${1:?usage: make_certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
days=30
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() { # NAME CN
	key "$1.key"
	openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days $days -out "$1.pem" \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
leaf() { # NAME CA CN SAN EKU
	key "$1.key"
	openssl req -new -key "$1.key" -subj "/O=Hornbeam Test/CN=$3" -out "$1.csr"
	printf 'subjectAltName=%s\nextendedKeyUsage=%s\nbasicConstraints=CA:FALSE\n' "$4" "$5" >"$1.ext"
	openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days $days \
		-extfile "$1.ext" -out "$1.pem" 2>/dev/null
	rm -f "$1.csr" "$1.ext"
}
ca ca "Hornbeam Test CA"
ca rogueca "Rogue CA"
leaf server ca localhost "DNS:localhost,IP:127.0.0.1" serverAuth
leaf other ca other.test "DNS:other.test,DNS:*.wild.test" serverAuth
leaf client ca client.test "DNS:client.test" clientAuth
leaf rogue rogueca rogue.test "DNS:rogue.test" clientAuth
for n in node1 node2; do
	leaf $n ca $n.cluster.test "DNS:$n.cluster.test,IP:127.0.0.1" serverAuth,clientAuth
done
leaf roguenode rogueca roguenode.cluster.test "DNS:roguenode.cluster.test" serverAuth,clientAuth
openssl pkey -in server.key -aes256 -passout pass:s3cret -out server-enc.key
openssl pkey -in node1.key -aes256 -passout pass:n0de-pw -out node1-enc.key
