#!/usr/bin/env bash
# Makes Tiny Shakespeare with the tokenizer of a pretraining corpus or
# checkpoint, shakespeare_bpe.h5, for finetuning (EX3). The split is the
# character-level corpus's: the first 90% of the characters are /train and
# the last 10% /val, so the validation text is the same as
# shakespeare_char's; the text ends with <|endoftext|> (in /val).
#
# Usage: prepare.sh [path/to/input.txt] <tokenizer source .h5> [out_dir]
#   input.txt         Tiny Shakespeare; default data/shakespeare_char/input.txt
#                     if present, else downloaded into out_dir (sha256 checked).
#   tokenizer source  the pretraining corpus (data/large_corpus/large_corpus.h5)
#                     or a checkpoint trained on it (runs/pretrain_large/best.h5);
#                     its tokenizer is stored in the new corpus, so the trainer
#                     accepts the pair for init_from.
#   out_dir           where shakespeare_bpe.h5 goes (default data/shakespeare_bpe).
# The gpt binary is $GPT if set, else .build/release/gpt (built if missing).
set -euo pipefail

URL="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHA256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
die() { echo "prepare.sh: $*" >&2; exit 1; }
usage="usage: prepare.sh [path/to/input.txt] <tokenizer source .h5> [out_dir]"

# The argument ending in .h5 is the tokenizer source; one before it is the text, one after it the output folder.
input="" source="" out_dir=""
for arg in "$@"; do
    if [ -z "$source" ]; then
        case "$arg" in
            *.h5) source="$arg" ;;
            *) [ -z "$input" ] || die "$usage"; input="$arg" ;;
        esac
    else
        [ -z "$out_dir" ] || die "$usage"
        out_dir="$arg"
    fi
done
[ -n "$source" ] || die "$usage (the tokenizer source, a corpus or checkpoint .h5, is missing)"
[ -f "$source" ] || die "no such file: $source"
out_dir="${out_dir:-$root/data/shakespeare_bpe}"
mkdir -p "$out_dir" || die "cannot create $out_dir"

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then shasum -a 256 "$1" | cut -d' ' -f1
    else die "need sha256sum or shasum to check the text"
    fi
}

if [ -z "$input" ] && [ -f "$root/data/shakespeare_char/input.txt" ]; then
    input="$root/data/shakespeare_char/input.txt"
fi
if [ -n "$input" ]; then
    [ -f "$input" ] || die "no such file: $input"
    if [ "$(sha256_of "$input")" != "$SHA256" ]; then
        echo "prepare.sh: note: $input is not the canonical Tiny Shakespeare (sha256 differs)" >&2
    fi
else
    input="$out_dir/input.txt"
    if [ ! -f "$input" ]; then
        echo "downloading Tiny Shakespeare from $URL"
        partial="$input.part"
        if command -v curl >/dev/null 2>&1; then
            curl -fL --retry 3 -o "$partial" "$URL" || { rm -f "$partial"; die "download failed; pass a local copy: prepare.sh path/to/input.txt $source"; }
        elif command -v wget >/dev/null 2>&1; then
            wget -O "$partial" "$URL" || { rm -f "$partial"; die "download failed; pass a local copy: prepare.sh path/to/input.txt $source"; }
        else
            die "need curl or wget to download, or pass a local copy: prepare.sh path/to/input.txt $source"
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

"$gpt" prepare --tokenizer-from "$source" --split-at-fraction 0.9 --quiet --out "$out_dir/shakespeare_bpe.h5" "$input"
