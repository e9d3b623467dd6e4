#!/usr/bin/env bash
# dev.sh: the developer's two commands, a local stack and the whole test run.
#
#   ./dev.sh up      install packages, build, and start PostgreSQL, otpd and
#                    nginx under .local/ (http://127.0.0.1:8080/otp), with a
#                    demo client; prints OTP_URL, DATABASE_URL, API_KEY and a
#                    curl example.  Running it again restarts cleanly.
#   ./dev.sh down    stop nginx, otpd and PostgreSQL (the data stays).
#   ./dev.sh test    install packages, build, run the unit tests, the
#                    integration tests, then both again on an ASan+UBSan
#                    build, then make distcheck.
#   ./dev.sh deps | build    only those steps (deps also installs the
#                    packages named in $OTPD_EXTRA_PACKAGES).
#
# Everything the stack writes lives in .local/ (git-ignored).  As root the
# stack runs as the unprivileged system user "otpd" (created when absent);
# otherwise as the current user.  PostgreSQL listens on a unix socket in
# .local/run (mode 0700: only the stack user connects, with trust) and on
# 127.0.0.1:15432 (password, see DATABASE_URL).  Ports can be moved with
# OTPD_HTTP_PORT and OTPD_PG_PORT.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$REPO"
LOCAL=$REPO/.local
RUN=$LOCAL/run
LOG=$LOCAL/log
SPOOL=$LOCAL/spool
PGDATA=$LOCAL/pg
NGINX_DIR=$LOCAL/nginx
HTTP_PORT=${OTPD_HTTP_PORT:-8080}
# below the kernel's ephemeral range (32768-60999): a port in it can be
# held by any outgoing connection (even one in TIME-WAIT), and then
# PostgreSQL cannot bind it
PG_PORT=${OTPD_PG_PORT:-15432}
DB_NAME=otpd
DB_ROLE=otpd
DEMO_CLIENT=demo
DEMO_TEMPLATE=otp-default-a1562ab2
# Debian's interpreter: the one python3-pytest and friends install into,
# whatever python3 comes first on PATH.
PY=/usr/bin/python3

APT_PACKAGES=(
	build-essential autoconf automake pkg-config
	libfcgi-dev libjson-c-dev libpq-dev libgcrypt20-dev libcurl4-openssl-dev
	postgresql nginx-light curl
	python3 python3-pytest python3-requests python3-cryptography
	python3-aiosmtpd python3-jsonschema python3-yaml
	# the other web servers the shipped configurations are tested with,
	# and tools other parts of the suite call
	lighttpd apache2 mandoc strace systemd acl cppcheck
)
# Installed only when the command is missing (a Node.js from elsewhere
# brings its own npm, and Debian's npm package would conflict with it).
APT_BY_COMMAND=(npm:nodejs npm:npm)

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'dev.sh: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# ---------------------------------------------------------------- common

cmd_deps() {
	local missing=() p
	# OTPD_EXTRA_PACKAGES: more Debian packages (bench/run adds the ones
	# only it needs: wrk, valgrind)
	# shellcheck disable=SC2206
	local want=("${APT_PACKAGES[@]}" ${OTPD_EXTRA_PACKAGES:-})
	for p in "${want[@]}"; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		    grep -q 'install ok installed'; then
			missing+=("$p")
		fi
	done
	for p in "${APT_BY_COMMAND[@]}"; do
		command -v "${p%%:*}" >/dev/null || missing+=("${p#*:}")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	say "installing ${missing[*]}"
	if ! is_root; then
		sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
		sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		    --no-install-recommends "${missing[@]}"
		return
	fi
	# As root (CI, a container): keep the packages' services (nginx and
	# apache2 both on port 80, PostgreSQL's default cluster) from being
	# started by their install scripts; the stack and the tests start
	# their own.
	local policy=/usr/sbin/policy-rc.d made_policy=0 rc=0
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 0755 "$policy"
		made_policy=1
	fi
	{ DEBIAN_FRONTEND=noninteractive apt-get update -q &&
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	    --no-install-recommends "${missing[@]}"; } || rc=$?
	if [ "$made_policy" -eq 1 ]; then rm -f "$policy"; fi
	return "$rc"
}

# (each step checked by hand: this also runs where errexit is off)
cmd_build() {
	cd "$REPO" || return 1
	if [ ! -x configure ]; then
		say "autoreconf -fi"
		autoreconf -fi || return 1
	fi
	if [ ! -f Makefile ]; then
		say "./configure --enable-werror"
		./configure --enable-werror || return 1
	fi
	say "make"
	make -j2
}

# The newest installed PostgreSQL server's bin directory (Debian keeps
# initdb and pg_ctl off PATH).
pg_bindir() {
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	if [ -n "$d" ] && [ -x "$d/initdb" ]; then
		echo "$d"
	elif command -v initdb >/dev/null; then
		dirname "$(command -v initdb)"
	else
		die "no PostgreSQL server found (apt-get install postgresql)"
	fi
}

# ---------------------------------------------------------------- stack

stack_user() {
	if is_root; then echo otpd; else id -un; fi
}

# The prefix that runs a command as the stack user; setpriv execs, so $! of
# a background command is the command itself.
STACK_AS=()
is_root && STACK_AS=(setpriv --reuid=otpd --regid=otpd --init-groups --)

# as_stack CMD...: run CMD as the stack user.
as_stack() {
	"${STACK_AS[@]}" "$@"
}

ensure_stack_user() {
	is_root || return 0
	if ! getent passwd otpd >/dev/null; then
		say "creating system user otpd"
		useradd --system --user-group --no-create-home \
		    --home-dir /nonexistent --shell /usr/sbin/nologin otpd
	fi
}

# reach_repo: as root, let the stack user traverse (search, not list) every
# directory above the checkout that it cannot, e.g. /root in mode 0700, with
# an ACL entry for that user alone.
reach_repo() {
	is_root || return 0
	local d="" part
	local -a parts
	IFS=/ read -ra parts <<<"${REPO#/}"
	for part in "${parts[@]}"; do
		d=$d/$part
		if ! as_stack test -x "$d"; then
			say "granting user otpd search permission on $d (ACL)"
			setfacl -m u:otpd:x "$d"
		fi
	done
}

make_dirs() {
	reach_repo
	mkdir -p "$LOCAL"
	if is_root; then
		chown otpd:otpd "$LOCAL"
	fi
	as_stack mkdir -p "$RUN" "$LOG" "$SPOOL" "$NGINX_DIR/tmp"
	chmod 0700 "$RUN"
	# the logs belong to the stack user, whoever opens them first
	local f
	for f in otpd.log nginx-error.log nginx-access.log postgresql.log; do
		touch "$LOG/$f"
		if is_root; then chown otpd:otpd "$LOG/$f"; fi
	done
	as_stack test -w "$RUN" ||
	    die "user $(stack_user) cannot write $RUN: put the repository where it can be reached (not under /root)"
	as_stack test -x "$REPO/src/otpd" ||
	    die "user $(stack_user) cannot run $REPO/src/otpd: put the repository where it can be reached (not under /root)"
}

# pid_alive PIDFILE NAME: the process in PIDFILE is running and is NAME.
pid_alive() {
	local pid
	[ -f "$1" ] || return 1
	pid=$(cat "$1" 2>/dev/null) || return 1
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	[ -r "/proc/$pid/cmdline" ] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2"
}

# stop_pid PIDFILE NAME SIGNAL: signal the process and wait for it to go.
stop_pid() {
	local pidfile=$1 name=$2 sig=$3 pid i
	if ! pid_alive "$pidfile" "$name"; then
		rm -f "$pidfile"
		return 0
	fi
	pid=$(cat "$pidfile")
	say "stopping $name (pid $pid)"
	kill -s "$sig" "$pid" 2>/dev/null || true
	for i in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		say "$name did not stop in 10 s; killing it"
		kill -s KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$pidfile"
}

pg_running() {
	[ -f "$PGDATA/postmaster.pid" ] &&
	    as_stack "$(pg_bindir)/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1
}

cmd_down() {
	stop_pid "$RUN/nginx.pid" nginx QUIT
	stop_pid "$RUN/otpd-sender.pid" otpd-sender TERM
	stop_pid "$RUN/otpd.pid" otpd TERM
	rm -f "$RUN/otpd.sock"
	if pg_running; then
		say "stopping PostgreSQL"
		as_stack "$(pg_bindir)/pg_ctl" -D "$PGDATA" -m fast -w stop \
		    >/dev/null
	fi
}

psql_stack() {
	as_stack psql -X -q -v ON_ERROR_STOP=1 -h "$RUN" -p "$PG_PORT" \
	    -U "$DB_ROLE" "$@"
}

start_pg() {
	local bindir
	bindir=$(pg_bindir)
	if [ ! -f "$PGDATA/PG_VERSION" ]; then
		say "initdb $PGDATA"
		as_stack mkdir -p "$PGDATA"
		chmod 0700 "$PGDATA"
		(umask 077; od -An -tx1 -N16 /dev/urandom | tr -d ' \n' \
		    >"$LOCAL/pg-password")
		if is_root; then chown otpd:otpd "$LOCAL/pg-password"; fi
		as_stack "$bindir/initdb" -D "$PGDATA" -U "$DB_ROLE" \
		    --pwfile="$LOCAL/pg-password" -E UTF8 --no-locale \
		    --auth-local=trust --auth-host=scram-sha-256 \
		    >"$LOG/initdb.log" 2>&1 ||
		    { cat "$LOG/initdb.log" >&2; die "initdb failed"; }
	fi
	say "starting PostgreSQL on $RUN and 127.0.0.1:$PG_PORT"
	# Settings that name paths are given at each start, so a moved
	# checkout still works.
	if ! as_stack "$bindir/pg_ctl" -D "$PGDATA" -l "$LOG/postgresql.log" \
	    -w -t 60 -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $RUN -c unix_socket_permissions=0700" \
	    start >/dev/null; then
		tail -n 30 "$LOG/postgresql.log" >&2 || true
		die "PostgreSQL did not start (is port $PG_PORT free?)"
	fi
	if [ -z "$(psql_stack -d postgres -Atc \
	    "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" ]; then
		say "creating database $DB_NAME"
		psql_stack -d postgres -c "CREATE DATABASE $DB_NAME"
	fi
}

conninfo() {
	echo "host=$RUN port=$PG_PORT dbname=$DB_NAME user=$DB_ROLE"
}

write_otpd_conf() {
	as_stack tee "$LOCAL/otpd.conf" >/dev/null <<EOF
# .local/otpd.conf: written by ./dev.sh up (overwritten on every run).
# See deploy/otpd.conf.example for every setting.
database = "$(conninfo)"
socket = $RUN/otpd.sock
workers = 2
key_file = $LOCAL/otpd.key
body_limit = 16384
log_level = info
expires_max = 86400
EOF
}

start_otpd() {
	say "starting otpd on $RUN/otpd.sock (log: $LOG/otpd.log)"
	rm -f "$RUN/otpd.sock"
	# setsid: detached from this terminal; exec all the way, so $! is
	# otpd itself.  otpd, PostgreSQL and nginx all run as the stack user,
	# so nginx reaches the socket without widening its permissions.
	setsid "${STACK_AS[@]}" "$REPO/src/otpd" -c "$LOCAL/otpd.conf" \
	    </dev/null >>"$LOG/otpd.log" 2>&1 &
	echo $! >"$RUN/otpd.pid"
	local i
	for i in $(seq 1 100); do
		[ -S "$RUN/otpd.sock" ] && return 0
		pid_alive "$RUN/otpd.pid" otpd || break
		sleep 0.1
	done
	tail -n 30 "$LOG/otpd.log" >&2 || true
	die "otpd did not start"
}

# the sender, woken by NOTIFY from generate; the demo providers are of kind
# file, so codes land in $SPOOL
start_sender() {
	say "starting otpd-sender --follow (log: $LOG/otpd-sender.log)"
	touch "$LOG/otpd-sender.log"
	is_root && chown otpd:otpd "$LOG/otpd-sender.log"
	setsid "${STACK_AS[@]}" "$REPO/src/otpd-sender" --follow \
	    -c "$LOCAL/otpd.conf" </dev/null >>"$LOG/otpd-sender.log" 2>&1 &
	echo $! >"$RUN/otpd-sender.pid"
	sleep 0.2
	pid_alive "$RUN/otpd-sender.pid" otpd-sender || {
		tail -n 20 "$LOG/otpd-sender.log" >&2 || true
		die "otpd-sender did not start"
	}
}

# nginx_conf DIR LISTEN FASTCGI_TARGET PIDFILE ERRORLOG ACCESSLOG: write
# DIR/nginx.conf around the shipped server block (paths and ports only).
nginx_conf() {
	local dir=$1 listen=$2 target=$3 pidfile=$4 errlog=$5 acclog=$6
	cp /etc/nginx/fastcgi_params "$dir/fastcgi_params"
	sed -e "s|@LISTEN@|$listen|g" -e "s|@OTPD_SOCKET@|$target|g" \
	    "$REPO/deploy/nginx/otpd.conf" >"$dir/otpd-site.conf"
	cat >"$dir/nginx.conf" <<EOF
# written by ./dev.sh up; the server block is deploy/nginx/otpd.conf
worker_processes 1;
pid $pidfile;
error_log $errlog info;
events { worker_connections 256; }
http {
	access_log $acclog;
	client_body_temp_path $dir/tmp/body;
	fastcgi_temp_path $dir/tmp/fastcgi;
	proxy_temp_path $dir/tmp/proxy;
	uwsgi_temp_path $dir/tmp/uwsgi;
	scgi_temp_path $dir/tmp/scgi;
	include otpd-site.conf;
}
EOF
}

start_nginx() {
	say "starting nginx on 127.0.0.1:$HTTP_PORT"
	nginx_conf "$NGINX_DIR" "127.0.0.1:$HTTP_PORT" "unix:$RUN/otpd.sock" \
	    "$RUN/nginx.pid" "$LOG/nginx-error.log" "$LOG/nginx-access.log"
	if is_root; then chown -R otpd:otpd "$NGINX_DIR"; fi
	if ! as_stack nginx -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf" \
	    -e "$LOG/nginx-error.log" >>"$LOG/nginx-error.log" 2>&1; then
		tail -n 20 "$LOG/nginx-error.log" >&2 || true
		die "nginx did not start (is port $HTTP_PORT free?)"
	fi
	local i
	for i in $(seq 1 100); do
		if curl -fsS -o /dev/null "http://127.0.0.1:$HTTP_PORT/otp/health"
		then
			return 0
		fi
		sleep 0.1
	done
	curl -sS "http://127.0.0.1:$HTTP_PORT/otp/health" >&2 || true
	tail -n 20 "$LOG/otpd.log" >&2 || true
	die "GET /otp/health does not answer 200"
}

# The demo client: created once; on a re-run its API key is rotated so that
# it can be printed again (only its hash is stored).
demo_client() {
	psql_stack -d "$DB_NAME" -At \
	    -v client="$DEMO_CLIENT" -v template="$DEMO_TEMPLATE" \
	    -v email_path="$SPOOL/email.jsonl" -v sms_path="$SPOOL/sms.jsonl" <<'EOF'
SELECT CASE WHEN EXISTS (SELECT 1 FROM otp.clients WHERE name = :'client')
	THEN otp.rotate_api_key(:'client')
	ELSE otp.create_client(:'client') END AS api_key \gset
SELECT otp.enable_client(:'client') \g /dev/null
SELECT otp.add_provider(:'client', 'email', 'generic', 'file',
	jsonb_build_object('path', :'email_path')) \g /dev/null
SELECT otp.add_provider(:'client', 'sms', 'generic', 'file',
	jsonb_build_object('path', :'sms_path')) \g /dev/null
SELECT otp.set_template(:'client', :'template', 'email', 'Your code',
	'Your code is {{code}}. It expires in {{minutes}} minutes.') \g /dev/null
SELECT otp.set_template(:'client', :'template', 'sms', NULL,
	'Your code is {{code}}. It expires in {{minutes}} minutes.') \g /dev/null
\echo :api_key
EOF
}

cmd_up() {
	cmd_deps
	cmd_build
	[[ "$REPO" =~ [[:space:]] ]] && die "the repository path has blanks"
	ensure_stack_user
	make_dirs
	cmd_down
	# a failed start leaves nothing running
	trap 'say "start failed; stopping what was started"; cmd_down' EXIT
	start_pg
	say "migrating"
	as_stack "$REPO/src/otpd-migrate" -d "$(conninfo)" -s "$REPO/sql"
	if [ ! -f "$LOCAL/otpd.key" ]; then
		say "writing $LOCAL/otpd.key"
		as_stack "$REPO/src/otpd-keygen" "$LOCAL/otpd.key"
	fi
	write_otpd_conf
	start_otpd
	start_sender
	start_nginx
	local key pw
	key=$(demo_client)
	[ -n "$key" ] || die "could not create the demo client"
	pw=$(cat "$LOCAL/pg-password")
	trap - EXIT

	local url="http://127.0.0.1:$HTTP_PORT/otp"
	cat <<EOF

OTP_URL=$url
DATABASE_URL=postgresql://$DB_ROLE:$pw@127.0.0.1:$PG_PORT/$DB_NAME
API_KEY=$key

# 1. generate a code (the answer carries the otpId, never the code):
curl -sS -X POST $url/generate -H 'x-api-key: $key' -H 'Content-Type: application/json' -d '{"channel":"email","provider":"generic","destination":"test@example.com","type":"numeric","length":6,"expiresInSeconds":300,"templateId":"$DEMO_TEMPLATE"}'

# 2. the sender delivers it through the demo provider "generic" (kind file):
tail -n 1 $SPOOL/email.jsonl

# 3. validate it with the otpId and the code from above:
curl -sS -X POST $url/validate -H 'x-api-key: $key' -H 'Content-Type: application/json' -d '{"otpId":"OTP_ID","otp":"CODE"}'

# or all three at once:
ID=\$(curl -sS -X POST $url/generate -H 'x-api-key: $key' -H 'Content-Type: application/json' -d '{"channel":"sms","provider":"generic","destination":"+573001112233","type":"numeric","length":6,"expiresInSeconds":300}' | $PY -c 'import json,sys; print(json.load(sys.stdin)["otpId"])'); for i in 1 2 3 4 5 6 7 8 9 10; do grep -q "\$ID" $SPOOL/sms.jsonl 2>/dev/null && break; sleep 0.5; done; CODE=\$(grep "\$ID" $SPOOL/sms.jsonl | $PY -c 'import json,sys; print(json.loads(sys.stdin.readline())["code"])'); curl -sS -X POST $url/validate -H 'x-api-key: $key' -H 'Content-Type: application/json' -d "{\\"otpId\\":\\"\$ID\\",\\"otp\\":\\"\$CODE\\"}"; echo

# logs: $LOG/   stop: ./dev.sh down
EOF
}

# ---------------------------------------------------------------- tests

PASSED=0
FAILED=0

# count_make_check LOGFILE: add automake's "# PASS:"/"# FAIL:" summary of make check.
count_make_check() {
	local log=$1 p f
	p=$(sed -n 's/^# PASS: *\([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)
	f=$(sed -n 's/^# \(FAIL\|ERROR\|XPASS\): *\([0-9][0-9]*\).*/\2/p' \
	    "$log" | awk '{s += $1} END {print s + 0}')
	PASSED=$((PASSED + ${p:-0}))
	FAILED=$((FAILED + f))
	[ -n "$p" ]	# no summary at all: make check did not get to run
}

# count_pytest LOGFILE: add pytest's closing summary line.
count_pytest() {
	local line p f e
	line=$(grep -E '^=+ .* in [0-9.]+s' "$1" | tail -n 1) || true
	p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || true)
	f=$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+' || true)
	e=$(grep -oE '[0-9]+ errors?' <<<"$line" | grep -oE '[0-9]+' || true)
	PASSED=$((PASSED + ${p:-0}))
	FAILED=$((FAILED + ${f:-0} + ${e:-0}))
}

# run_step NAME CMD...: run a step that has no test count of its own; a
# failure counts as one failed test.
run_step() {
	local name=$1
	shift
	if "$@"; then
		return 0
	fi
	say "FAILED: $name"
	FAILED=$((FAILED + 1))
	return 1
}

run_make_check() {
	local dir=$1 log=$2 rc=0
	say "make check in $dir"
	(cd "$dir" && make check ${CI:+VERBOSE=1}) 2>&1 | tee "$log" ||
	    rc=$?
	if ! count_make_check "$log"; then
		FAILED=$((FAILED + 1))
	elif [ "$rc" -ne 0 ] && ! grep -qE '^# (FAIL|ERROR|XPASS): *[1-9]' "$log"
	then
		FAILED=$((FAILED + 1))	# failed outside the tests themselves
	fi
	return "$rc"
}

# run_pytest BUILD LOG: the integration suite against BUILD's binaries.
run_pytest() {
	local build=$1 log=$2 rc=0
	say "integration tests against $build"
	(cd "$REPO" && OTPD_BUILD=$build OTPD_MIGRATE=$build/src/otpd-migrate \
	    PYTHONDONTWRITEBYTECODE=1 \
	    "$PY" -m pytest -v -rfE -p no:cacheprovider tests/integration) \
	    2>&1 | tee "$log" || rc=$?
	count_pytest "$log"
	if [ "$rc" -eq 5 ]; then
		say "FAILED: pytest collected no tests"
		FAILED=$((FAILED + 1))
	elif [ "$rc" -ne 0 ] && ! grep -qE '^=+ .*(failed|error)' "$log"; then
		FAILED=$((FAILED + 1))	# pytest itself broke
	fi
	return "$rc"
}

# The ASan+UBSan build: a copy of the sources configured on its own, since
# automake refuses an out-of-tree build of a source tree configured in place.
build_asan() {
	local dir=$LOCAL/build-asan
	say "ASan+UBSan build in $dir"
	rm -rf "$dir"
	mkdir -p "$dir"
	tar -C "$REPO" --exclude=./.git --exclude=./.local \
	    --exclude=./autom4te.cache -cf - . | tar -C "$dir" -xf - &&
	(cd "$dir" && ./configure -q --enable-sanitizers --enable-werror &&
	    make -s clean && make -j2)
}

# Static checks: cppcheck's warnings, and none of the functions the house
# style bans (unbounded copies and formats, unchecked number parsing).
BANNED='atoi|atol|atoll|sscanf|strcpy|strcat|sprintf|vsprintf|strtok|gets'
run_static_checks() {
	local rc=0
	say "cppcheck and banned functions"
	cppcheck -q --enable=warning,portability --inline-suppr \
	    --error-exitcode=1 -I src src tests/unit || rc=1
	if grep -nE "\<($BANNED)[[:space:]]*\(" src/*.[ch] tests/unit/*.[ch]
	then
		say "banned functions used (above)"
		rc=1
	fi
	return "$rc"
}

# make distcheck: the tarball builds, passes make check and installs
# out of tree.  Run last, so the tree copied for the ASan build never holds
# its temporary directory.
run_distcheck() {
	local log=$1 rc=0
	say "make distcheck"
	(cd "$REPO" && make -s distcheck) >"$log" 2>&1 || rc=$?
	rm -f "$REPO"/otpd-*.tar.gz
	[ "$rc" -eq 0 ] || tail -n 40 "$log" >&2
	return "$rc"
}

cmd_test() {
	local logdir=$LOCAL/test-logs
	run_step deps cmd_deps || die "could not install packages"
	mkdir -p "$logdir"
	if ! run_step build cmd_build; then
		echo "$PASSED passed, $FAILED failed"
		exit 1
	fi
	run_step static-checks run_static_checks || true
	run_make_check "$REPO" "$logdir/make-check.log" || true
	run_pytest "$REPO" "$logdir/pytest.log" || true

	# LeakSanitizer cannot work under ptrace (strace, gdb): turn leak
	# checks off rather than report its failure as ours.
	local leaks=1
	if ! grep -qE '^TracerPid:[[:space:]]+0$' /proc/self/status; then
		say "running under a tracer: LeakSanitizer off"
		leaks=0
	fi
	export ASAN_OPTIONS="detect_leaks=$leaks:abort_on_error=1:halt_on_error=1:strict_string_checks=1"
	export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
	if run_step asan-build build_asan; then
		run_make_check "$LOCAL/build-asan" "$logdir/make-check-asan.log" ||
		    true
		run_pytest "$LOCAL/build-asan" "$logdir/pytest-asan.log" || true
	fi
	unset ASAN_OPTIONS UBSAN_OPTIONS
	run_step distcheck run_distcheck "$logdir/distcheck.log" || true

	echo
	echo "$PASSED passed, $FAILED failed"
	[ "$FAILED" -eq 0 ]
}

usage() {
	awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
test) cmd_test ;;
deps) cmd_deps ;;
build) cmd_deps; cmd_build ;;
-h | --help | help) usage ;;
*) usage >&2; exit 2 ;;
esac
