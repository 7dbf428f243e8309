#!/usr/bin/env bash
# Makes the character-level Tiny Shakespeare corpus, shakespeare_char.h5.
#
# Usage: prepare.sh [path/to/input.txt] [out_dir]
#   input.txt  a local copy of Tiny Shakespeare; without it the text is
#              downloaded into out_dir (once) and its sha256 checked.
#   out_dir    where input.txt and shakespeare_char.h5 go
#              (default: data/shakespeare_char under the repository root,
#              where configs/shakespeare_char.toml looks for the corpus).
# The gpt binary is $GPT if set, else .build/release/gpt (built if missing).
set -euo pipefail

URL="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHA256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
input="${1:-}"
out_dir="${2:-$root/data/shakespeare_char}"

die() { echo "prepare.sh: $*" >&2; exit 1; }

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then shasum -a 256 "$1" | cut -d' ' -f1
    else die "need sha256sum or shasum to check the download"
    fi
}

[ $# -le 2 ] || die "usage: prepare.sh [path/to/input.txt] [out_dir]"
mkdir -p "$out_dir" || die "cannot create $out_dir"

if [ -n "$input" ]; then
    [ -f "$input" ] || die "no such file: $input"
    if [ "$(sha256_of "$input")" != "$SHA256" ]; then
        echo "prepare.sh: note: $input is not the canonical Tiny Shakespeare (sha256 differs);" \
             "its counts will differ from nanoGPT's" >&2
    fi
else
    input="$out_dir/input.txt"
    if [ ! -f "$input" ]; then
        echo "downloading Tiny Shakespeare from $URL"
        partial="$input.part"
        if command -v curl >/dev/null 2>&1; then
            curl -fL --retry 3 -o "$partial" "$URL" || { rm -f "$partial"; die "download failed; pass a local copy: prepare.sh path/to/input.txt"; }
        elif command -v wget >/dev/null 2>&1; then
            wget -O "$partial" "$URL" || { rm -f "$partial"; die "download failed; pass a local copy: prepare.sh path/to/input.txt"; }
        else
            die "need curl or wget to download, or pass a local copy: prepare.sh path/to/input.txt"
        fi
        mv "$partial" "$input"
    fi
    actual="$(sha256_of "$input")"
    if [ "$actual" != "$SHA256" ]; then
        rm -f "$input"
        die "$input has sha256 $actual, expected $SHA256; removed it, run again to download afresh"
    fi
fi

gpt="${GPT:-$root/.build/release/gpt}"
if [ ! -x "$gpt" ]; then
    [ -z "${GPT:-}" ] || die "GPT=$GPT is not an executable"
    echo "building gpt (swift build -c release)"
    (cd "$root" && swift build -c release --product gpt) || die "swift build failed"
fi

"$gpt" prepare --tokenizer char --out "$out_dir/shakespeare_char.h5" "$input"
