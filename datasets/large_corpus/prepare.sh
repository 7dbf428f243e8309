#!/usr/bin/env bash
# Builds a pretraining corpus from directories of text files: trains a
# byte-level BPE tokenizer on a sample of the train documents, then encodes
# every document (one file = one document) into one HDF5 corpus.
#
# Usage: prepare.sh [--shared] [text dirs, files or globs ...]
#   --shared   use the project's shared corpus (../shared/datasets/large next
#              to the repository, or $SWIFTGPT_SHARED_DATASETS/large): its
#              .tar.xz and .xz files are unpacked into a temporary directory
#              that is removed at the end.
#   inputs     directories (walked recursively), text files, .gz/.xz files.
#
# Environment (defaults in brackets):
#   OUT_DIR        where large_corpus.h5 and tokenizer.json go [data/large_corpus]
#   VOCAB_SIZE     BPE vocabulary: 256 bytes + merges + <|endoftext|> [8192]
#   SAMPLE_MB      megabytes of text the tokenizer learns from [100]
#   VAL_FRACTION   fraction of the documents held out as /val [0.05]
#   SEED           seed of the document split and the tokenizer sample [1337]
#   INCLUDE        only files matching this pattern, e.g. '*.txt' [all files]
#   TOKENIZER      an existing tokenizer (.json, or a corpus/checkpoint .h5) to use instead of training one
#   GPT            the gpt binary [.build/release/gpt, built if missing]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
die() { echo "prepare.sh: $*" >&2; exit 1; }

out_dir="${OUT_DIR:-$root/data/large_corpus}"
vocab="${VOCAB_SIZE:-8192}"
sample="${SAMPLE_MB:-100}"
val="${VAL_FRACTION:-0.05}"
seed="${SEED:-1337}"

inputs=()
shared=0
for arg in "$@"; do
    case "$arg" in
        --shared) shared=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $arg (see --help)" ;;
        *) inputs+=("$arg") ;;
    esac
done

if [ "$shared" = 1 ]; then
    large="${SWIFTGPT_SHARED_DATASETS:-$root/../shared/datasets}/large"
    [ -d "$large" ] || die "no shared corpus at $large (set SWIFTGPT_SHARED_DATASETS)"
    command -v xz >/dev/null || die "xz is needed to unpack $large (apt-get install xz-utils)"
    unpacked="$(mktemp -d "${TMPDIR:-/tmp}/swiftgpt-large.XXXXXX")"
    trap 'rm -rf "$unpacked"' EXIT
    echo "unpacking $large into $unpacked"
    for archive in "$large"/*.tar.xz; do tar -xJf "$archive" -C "$unpacked"; done
    for single in "$large"/*.xz; do
        case "$single" in *.tar.xz) ;; *) xz -dc "$single" > "$unpacked/$(basename "${single%.xz}")" ;; esac
    done
    for entry in "$unpacked"/*; do inputs+=("$entry"); done
fi
[ "${#inputs[@]}" -gt 0 ] || die "give directories or files of text, or --shared (see --help)"

gpt="${GPT:-$root/.build/release/gpt}"
if [ ! -x "$gpt" ]; then
    [ -z "${GPT:-}" ] || die "GPT=$GPT is not an executable"
    echo "building gpt (swift build -c release)"
    (cd "$root" && swift build -c release --product gpt) || die "swift build failed"
fi
mkdir -p "$out_dir" || die "cannot create $out_dir"

include=()
[ -z "${INCLUDE:-}" ] || include=(--include "$INCLUDE")
if [ -n "${TOKENIZER:-}" ]; then
    case "$TOKENIZER" in
        *.json) tokenizer=(--tokenizer-file "$TOKENIZER") ;;
        *) tokenizer=(--tokenizer-from "$TOKENIZER") ;;
    esac
else
    # The tokenizer learns from the train documents only, and is kept next to the corpus.
    tokenizer=(--vocab-size "$vocab" --sample-mb "$sample" --save-tokenizer "$out_dir/tokenizer.json")
fi

"$gpt" prepare --tokenizer bpe "${tokenizer[@]}" --val-fraction "$val" --seed "$seed" ${include[@]+"${include[@]}"} \
    --out "$out_dir/large_corpus.h5" "${inputs[@]}"
