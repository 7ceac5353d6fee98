#!/bin/sh
# Make a self-signed certificate for a host name (default www.example.com) and store it, with its key, as the
# kubernetes.io/tls Secret `site-tls` of the namespace `site` (both made or replaced), the Secret the Ingress
# in ingress.yaml names. Needs openssl and kubectl (KUBECTL=... to use another, e.g. "kubelite").
#   manifests/site/tls-secret.sh [HOST]
set -eu
host=${1:-www.example.com}
kubectl=${KUBECTL:-kubectl}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
openssl req -x509 -newkey rsa:2048 -sha256 -nodes -days 365 -subj "/CN=$host" \
  -addext "subjectAltName=DNS:$host" -keyout "$dir/tls.key" -out "$dir/tls.crt" 2>/dev/null
$kubectl create namespace site --dry-run=client -o yaml | $kubectl apply -f -
$kubectl create secret tls site-tls -n site --cert "$dir/tls.crt" --key "$dir/tls.key" --dry-run=client -o yaml |
  $kubectl apply -f -
