#!/usr/bin/env bash
# Writes, on stdout, a file generated from a server binary's `--help`, so the
# package lists exactly the settings that binary knows:
#
#   scripts/from-help.sh env BINARY   /etc/api/api.env: every setting, commented out
#   scripts/from-help.sh man BINARY   the api(8) man page (roff)
#
# The settings are the lines "  NAME  help text [default]" that follow
# "Configuration" in the help (src/app/config.c prints them from its table).
# The man page's date is SOURCE_DATE_EPOCH's (dpkg-buildpackage sets it from
# debian/changelog), else today's.
set -euo pipefail

die() {
  echo "from-help.sh: $*" >&2
  exit 1
}

[[ $# -eq 2 && ($1 == env || $1 == man) ]] || die "usage: $0 env|man BINARY"
MODE=$1
BIN=$2
[[ -x ${BIN} ]] || die "${BIN}: not an executable"

help=$("${BIN}" --help) || die "${BIN} --help failed"
version=$("${BIN}" --version | head -n 1) || die "${BIN} --version failed"
version=${version#api }
version=${version%% *}

# NAME<TAB>help<TAB>default, one setting per line.
settings=$(awk '
  /^Configuration/ { on = 1; next }
  on && /^  [A-Z][A-Z0-9_]* / {
    line = substr($0, 3)
    name = line; sub(/ .*/, "", name)
    rest = substr(line, length(name) + 1); sub(/^ +/, "", rest)
    def = ""
    if (match(rest, / \[[^]]*\]$/)) {
      def = substr(rest, RSTART + 2, RLENGTH - 3)
      rest = substr(rest, 1, RSTART - 1)
    }
    printf "%s\t%s\t%s\n", name, rest, def
  }' <<<"${help}")
[[ -n ${settings} ]] || die "no settings found in ${BIN} --help"

write_env() {
  cat <<'EOF'
# /etc/api/api.env: configuration of the api server (see api(8)).
#
# systemd reads this file for api.service and api-migrate.service
# (EnvironmentFile=); run `systemctl restart api` after changing it.
# Every setting is commented out, so the server's built-in default applies;
# where there is one, the value shown is that default. Remove the "#" and set
# a value to change a setting. The syntax is KEY=value, one per line (quote a
# value with spaces: KEY="a b").
#
# Before the server faces real traffic, set at least HOST (a numeric address
# to listen on), DATABASE_URL, DATABASE_MIGRATION_URL, JWT_SECRET (or
# JWT_JWKS_FILE) and CURSOR_SECRET: without the two secrets the server falls
# back to development keys. Make secrets with `openssl rand -hex 32`.
# This file holds secrets: keep it owned by root, mode 0600.
EOF
  while IFS=$'\t' read -r name text def; do
    printf '\n# %s\n#%s=%s\n' "${text}" "${name}" "${def}"
  done <<<"${settings}"
}

# roff: a backslash is \e, a minus sign \-; a line must not start with . or '.
roff() {
  sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
}

write_man() {
  local date
  date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%d)
  cat <<EOF
.TH API 8 "${date}" "api ${version}" "System Administration"
.SH NAME
api \\- HTTP API server on PostgreSQL and Redis
.SH SYNOPSIS
.B api
.RB [ serve | migrate ]
.RI [ \\-\\-name " " value " ...]"
.br
.B api
.BR \\-\\-help " | " \\-\\-version
.SH DESCRIPTION
.B api
serves a users API over HTTP/1.1 with PostgreSQL as its store and Redis for
caching, rate limits and idempotency keys. It runs one event-loop thread per
worker, logs one JSON object per line on standard output, and answers
.I /health/live
and
.I /health/ready
for supervisors and load balancers.
.PP
Configuration comes from environment variables (listed below); a flag named
after each variable, in lower case with dashes, overrides it:
.B PORT=8080
or
.BR "api \\-\\-port 8080" .
A bad value stops the start with exit status 2 and one line naming the
variable.
.SH COMMANDS
.TP
.B serve
Run the server (the default).
Under systemd (Type=notify) it sends READY=1 once every worker listens,
STOPPING=1 when shutdown begins, and, with WatchdogSec=, WATCHDOG=1 only
while every worker's event loop is turning.
.TP
.B migrate
Apply pending database migrations with DATABASE_MIGRATION_URL (the owner
role) and exit. Concurrent runs on several hosts are safe: it takes a
PostgreSQL advisory lock.
.TP
.B \\-\\-help
Print the usage and every setting with its default.
.TP
.B \\-\\-version
Print the version (and the git commit of a build from a checkout).
.SH ENVIRONMENT
EOF
  while IFS=$'\t' read -r name text def; do
    printf '.TP\n.B %s\n' "${name}"
    if [[ -n ${def} ]]; then
      printf '%s (default: %s)\n' "${text}" "${def}" | roff
    else
      printf '%s\n' "${text}" | roff
    fi
  done <<<"${settings}"
  cat <<'EOF'
.SH SIGNALS
.TP
.BR SIGTERM ", " SIGINT
Graceful shutdown: readiness turns 503, the server keeps serving for
SHUTDOWN_DELAY_MS, closes its listeners, lets in-flight requests finish for up
to SHUTDOWN_GRACE_MS, then exits with status 0. A second signal exits at once
with status 1.
.SH EXIT STATUS
0 on success, 1 on a runtime failure, 2 on a bad command line or setting.
.SH FILES
.TP
.I /etc/api/api.env
The settings, read by the systemd units.
.TP
.I /lib/systemd/system/api.service
The server's unit: Type=notify, a watchdog, and a sandbox.
.TP
.I /lib/systemd/system/api\-migrate.service
Runs
.B api migrate
before every start of api.service.
.TP
.I /usr/share/api/
The Grafana dashboard and Prometheus alert rules, when the package has them.
.TP
.I /usr/share/doc/api/install.md
Installing, configuring, upgrading and removing the package; the sandbox.
.SH SEE ALSO
.BR systemctl (1),
.BR journalctl (1),
.BR systemd.service (5),
.BR systemd.exec (5)
EOF
}

if [[ ${MODE} == env ]]; then
  write_env
else
  write_man
fi
