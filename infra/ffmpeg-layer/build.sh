#!/usr/bin/env bash
# Builds the ffmpeg Lambda layer for the runners (arm64): a zip holding bin/ffmpeg and
# bin/ffprobe, which Lambda unpacks under /opt, so they land in /opt/bin (REELAY_FFMPEG_DIR).
#
#   infra/ffmpeg-layer/build.sh <static arm64 ffmpeg tarball: a path or an http(s) URL> [out.zip]
#
# The binaries must be static aarch64 executables: Lambda's provided.al2023 has no ffmpeg
# libraries. infra/ffmpeg-layer/README.md says where to get such a build and how to publish
# the layer.
set -euo pipefail

die() {
    echo "build.sh: $*" >&2
    exit 1
}

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: $0 <ffmpeg-static-arm64.tar.xz | URL> [out.zip]"
source=$1
out=$(realpath -m "${2:-target/ffmpeg-layer-arm64.zip}")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

case "$source" in
http://* | https://*)
    command -v curl >/dev/null || die "curl is needed to download $source"
    curl -fL --retry 3 -o "$work/ffmpeg.tar" "$source"
    tarball=$work/ffmpeg.tar
    ;;
*)
    [ -f "$source" ] || die "$source is not a file"
    tarball=$source
    ;;
esac

mkdir -p "$work/unpacked" "$work/layer/bin" "$work/layer/share/ffmpeg"
tar -xf "$tarball" -C "$work/unpacked"

# An ELF file's e_machine (2 bytes at offset 18, little endian): 0xb7 is aarch64.
elf_machine() {
    od -An -tx1 -j18 -N2 "$1" | tr -d ' \n'
}

for tool in ffmpeg ffprobe; do
    found=$(find "$work/unpacked" -type f -name "$tool" | head -n 1)
    [ -n "$found" ] || die "no $tool in $source"
    [ "$(head -c 4 "$found" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ] || die "$tool is not an ELF executable"
    [ "$(elf_machine "$found")" = b700 ] || die "$tool is not an aarch64 (arm64) executable"
    # A dynamic executable names its loader in a PT_INTERP header: refuse it.
    if command -v readelf >/dev/null; then
        if readelf -lW "$found" | grep -q 'Requesting program interpreter'; then
            die "$tool is dynamically linked; Lambda has no ffmpeg libraries: use a static build"
        fi
    else
        echo "build.sh: readelf not found; not checking that $tool is static" >&2
    fi
    install -m 0755 "$found" "$work/layer/bin/$tool"
done

# The GPL asks that the licence travels with the binaries.
find "$work/unpacked" -maxdepth 2 -type f \( -iname 'GPL*' -o -iname 'COPYING*' -o -iname 'LICENSE*' -o -iname 'readme*' \) \
    -exec cp {} "$work/layer/share/ffmpeg/" \;

mkdir -p "$(dirname "$out")"
rm -f "$out"
# Python's zipfile keeps the executable bits, and python3 is on every machine that runs make.
(cd "$work/layer" && python3 -m zipfile -c "$out" bin share)

size=$(du -m "$out" | cut -f1)
echo "built $out (${size} MB): bin/ffmpeg, bin/ffprobe"
echo "publish it (see infra/ffmpeg-layer/README.md):"
echo "  aws s3 cp $out s3://<bucket>/ffmpeg-layer-arm64.zip"
echo "  aws lambda publish-layer-version --layer-name ffmpeg --compatible-architectures arm64 \\"
echo "    --compatible-runtimes provided.al2023 --content S3Bucket=<bucket>,S3Key=ffmpeg-layer-arm64.zip \\"
echo "    --query LayerVersionArn --output text"
