# make_certs.sh - sourced by tests/tls/testssl_run.sh and bench/tls_bench.sh:
# a throw-away CA and a server certificate it signs, made with openssl.
#
# make_certs DIR KEY CN DAYS [EXTRA_EXT]
#   DIR        where ca.pem, server.key (0600) and server.pem (leaf + CA) go
#   KEY        ec (P-256) or rsa (2048)
#   CN         the server name; the certificate also names IP 127.0.0.1
#   DAYS       validity
#   EXTRA_EXT  further x509v3 extension lines, e.g. extendedKeyUsage=serverAuth
make_certs() {
	local dir=$1 key=$2 cn=$3 days=$4 extra=${5:-}
	(
		cd "$dir" || exit 1
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
		openssl req -x509 -new -key ca.key -sha256 -days "$days" -subj "/CN=$cn CA" -out ca.pem 2>/dev/null
		if [ "$key" = rsa ]; then
			openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out server.key 2>/dev/null
		else
			openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out server.key 2>/dev/null
		fi
		openssl req -new -key server.key -subj "/CN=$cn" -out server.csr 2>/dev/null
		printf 'subjectAltName=DNS:%s,IP:127.0.0.1\n%b' "$cn" "$extra" > ext
		openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 \
			-days "$days" -extfile ext -out leaf.pem 2>/dev/null
		cat leaf.pem ca.pem > server.pem
		chmod 600 server.key
	)
}
