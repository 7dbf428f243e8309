# lib.sh: what the launch scripts share. Source it (. "$script_dir/lib.sh"):
#   die MESSAGE     prints "SCRIPT: MESSAGE" on stderr and exits 1
#   note MESSAGE    prints "SCRIPT: MESSAGE" on stderr
#   usage [STATUS]  prints the script's opening comment (down to its `set -` line) and exits
#   dispatch        runs the function cmd_COMMAND for the command given (below)
die() { echo "$(basename "$0"): $*" >&2; exit 1; }
note() { echo "$(basename "$0"): $*" >&2; }
usage() {
    sed -n '2,/^set -/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

# dispatch "up down status" "$@": runs cmd_COMMAND with the other arguments, for COMMAND = the first
# argument if it is one of the listed commands; help, -h and --help print the usage.
dispatch() {
    local commands=" $1 " command
    shift
    [[ $# -ge 1 ]] || usage 1
    command=$1
    shift
    case $command in -h|--help|help) usage 0 ;; esac
    [[ $commands == *" $command "* ]] || { note "unknown command '$command'"; usage 1; }
    "cmd_$command" "$@"
}
