# Copyright (C) ngx_ingest developers
# SPDX-License-Identifier: BSD-2-Clause
#
# ci/lib.sh: start and stop a private Redis, nginx (master + workers, the
# built module) and consumer on 127.0.0.1, for ci/e2e and ci/demo.
# Sourced; everything lives in $run and dies with the calling script.
#
# Redis runs from conf/redis.conf with the users of conf/redis-users.conf,
# each given a random password: nginx logs in as ingest-nginx and the
# consumers as ingest-consumer, from password files in $run; the default
# user, with a password of its own in REDISCLI_AUTH (exported), is the
# scripts' administrator for redis-cli.
#
# TLS=1: Redis from conf/redis-tls.conf.example (a TLS port only, client
# certificates required, certificates from ci/tls-certs), reached by nginx
# and by the consumers each through a stunnel client of their own, from
# conf/stunnel-redis.conf: redis_port is nginx's stunnel,
# consumer_redis_port the consumers', redis_tls_port Redis's.

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
run=$(mktemp -d "${TMPDIR:-/tmp}/ingest-run.XXXXXX")
# nginx workers run as another user: they must reach the spool in here
chmod 755 "$run"

free_port() {
    perl -MIO::Socket::INET -e '
        my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1",
                                      LocalPort => 0) or die $!;
        print $s->sockport, "\n";'
}

redis_port=$(free_port)

password() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }
REDISCLI_AUTH=$(password)
export REDISCLI_AUTH
for role in nginx consumer replica; do
    (umask 077; password > "$run/$role.password")
done

# $run/redis.conf: conf/redis.conf, its users with this run's passwords;
# the default user is the administrator here
write_redis_conf() {
    local role pw script=()
    for role in nginx consumer replica; do
        pw=$(cat "$run/$role.password")
        script+=(-e "s|^\(user ingest-$role on\) >CHANGE-ME-$role |\1 >$pw |")
    done
    (umask 077
     sed "${script[@]}" \
         -e "s|^user default off\$|user default on >$REDISCLI_AUTH ~* \&* +@all|" \
         "$top/conf/redis-users.conf" > "$run/redis-users.conf")
    sed "s|^include /etc/redis/redis-users\.conf\$|include $run/redis-users.conf|" \
        "$top/conf/redis.conf" > "$run/redis.conf"
    if [ -n "${TLS:-}" ]; then
        echo "include $top/conf/redis-tls.conf.example" >> "$run/redis.conf"
    fi
}
http_port=$(free_port)
consumer_pids=()
stunnel_pids=()
db="$run/ingest.db"

stop_all() {
    [ -f "$run/nginx.pid" ] && kill -QUIT "$(cat "$run/nginx.pid")" \
        2>/dev/null || true
    for pid in "${consumer_pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    sleep 0.5
    redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
    for pid in "${stunnel_pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [ -z "${KEEP_RUN:-}" ]; then
        rm -rf "$run"
    else
        echo "kept $run"
    fi
}
trap stop_all EXIT

start_redis() {
    if [ -n "${TLS:-}" ]; then
        start_redis_tls
        return
    fi
    # OTHER_CPUS keeps Redis and the consumer off nginx's core (ci/bench)
    write_redis_conf
    ${OTHER_CPUS:+taskset -c "$OTHER_CPUS"} redis-server "$run/redis.conf" \
        --port "$redis_port" --bind 127.0.0.1 --dir "$run" --unixsocket "" \
        --logfile "$run/redis.log" --daemonize yes >/dev/null
    for _ in $(seq 100); do
        redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && return
        sleep 0.05
    done
    echo "redis-server did not start" >&2
    exit 1
}

# TLS=1 (see the top): Redis on $redis_tls_port, stunnels on $redis_port
# (nginx's) and $consumer_redis_port (the consumers')
start_redis_tls() {
    local tls="$run/tls"
    "$top/ci/tls-certs" "$tls" redis.ingest.test >/dev/null
    redis_tls_port=$(free_port)
    consumer_redis_port=$(free_port)
    write_redis_conf
    redis-server "$run/redis.conf" --bind 127.0.0.1 \
        --tls-port "$redis_tls_port" --tls-cert-file "$tls/redis.crt" \
        --tls-key-file "$tls/redis.key" --tls-ca-cert-file "$tls/ca.crt" \
        --unixsocket "" --dir "$run" --logfile "$run/redis.log" \
        --daemonize yes >/dev/null
    for _ in $(seq 100); do
        redis-cli --tls --cacert "$tls/ca.crt" --cert "$tls/client.crt" \
            --key "$tls/client.key" -p "$redis_tls_port" ping 2>/dev/null \
            | grep -q PONG && break
        sleep 0.05
    done
    start_stunnel nginx "$redis_port"
    start_stunnel consumer "$consumer_redis_port"
}

# a stunnel client from conf/stunnel-redis.conf, its placeholders
# replaced, on 127.0.0.1:<port>; waits for a PONG through it
start_stunnel() {
    local name=$1 port=$2 conf="$run/stunnel-$1.conf"
    sed -e "s|^accept = 127\.0\.0\.1:6380$|accept = 127.0.0.1:$port|" \
        -e "s|^connect = REDIS_HOST:6379$|connect = 127.0.0.1:$redis_tls_port|" \
        -e "s|^checkHost = REDIS_HOST$|checkHost = redis.ingest.test|" \
        -e "s|/etc/stunnel/ingest/|$run/tls/|" \
        "$top/conf/stunnel-redis.conf" > "$conf"
    if [ "$(id -u)" != 0 ]; then
        sed -i '/^set[ug]id = /d' "$conf"
    fi
    stunnel4 "$conf" 2>>"$run/stunnel-$name.log" &
    stunnel_pids+=($!)
    for _ in $(seq 100); do
        redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && return
        sleep 0.05
    done
    echo "stunnel $name did not reach Redis; its log follows" >&2
    cat "$run/stunnel-$name.log" >&2
    exit 1
}

# FLUSH_KEYS: ingest_flush_keys (a small one cuts batches by count, many
# a second, as a busy list does); SHARDS: ingest_shards; REDIS_TIMEOUT:
# ingest_redis_timeout
start_nginx() {
    local workers=${1:-2}
    mkdir -p "$run/logs"
    cat > "$run/nginx.conf" <<_EOC_
load_module $top/build/ngx_http_ingest_module.so;
worker_processes $workers;
error_log $run/logs/error.log notice;
pid $run/nginx.pid;
events { worker_connections 2048; }
http {
    access_log off;
    client_body_temp_path $run/body;
    ingest_redis redis://ingest-nginx@127.0.0.1:$redis_port password_file=$run/nginx.password;
    ingest_flush_interval 100ms;
    ingest_flush_keys ${FLUSH_KEYS:-10000};
    ingest_shards ${SHARDS:-1};
    ingest_redis_timeout ${REDIS_TIMEOUT:-5s};
    server {
        listen 127.0.0.1:$http_port;
        location = /counters  { ingest_counters; }
        location = /increment { ingest_counters form=key_value; }

        # ci/bench instructions: the same with time buckets
        location = /counters-buckets { ingest_counters buckets=1m,1h,1d; }
        location = /increment-buckets {
            ingest_counters form=key_value buckets=1m,1h,1d;
        }

        # large bodies, answered at once or once Redis has them (ci/memory)
        location = /big {
            ingest_counters;
            client_max_body_size 8m;
            client_body_buffer_size 8m;
        }
        # ci/bench ack: the counters protocol, answered once Redis has it
        location = /counters-acked {
            ingest_counters;
            ingest_ack redis;
            ingest_ack_timeout 30s;
        }
        location = /big-acked {
            ingest_counters;
            ingest_ack redis;
            ingest_ack_timeout 30s;
            client_max_body_size 8m;
            client_body_buffer_size 8m;
        }
        location /totals/     { ingest_totals $db; }
        location = /ingest/status { ingest_status; }

        # NDJSON records
        location = /trips {
            client_max_body_size 8m;
            client_body_buffer_size 1m;
            ingest_records trips vendorid:int! tpep_pickup_datetime:text
                trip_distance:real total_amount:real;
        }

        # ci/bench's baseline: nginx reads the body off the socket and
        # discards it, and answers 204
        location = /plain {
            client_max_body_size 8m;
            return 204;
        }

        # ci/bench noise: the same again, to measure two equal locations
        location = /plain_b {
            client_max_body_size 8m;
            return 204;
        }
    }
}
_EOC_
    # NGINX_CPUS=0 pins nginx to core 0 (ci/bench)
    if [ -n "${NGINX_CPUS:-}" ]; then
        taskset -c "$NGINX_CPUS" /usr/sbin/nginx -p "$run" \
            -c "$run/nginx.conf" -e "$run/logs/error.log"
    else
        /usr/sbin/nginx -p "$run" -c "$run/nginx.conf" \
            -e "$run/logs/error.log"
    fi
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$http_port") 2>/dev/null && return
        sleep 0.05
    done
    echo "nginx did not start" >&2
    exit 1
}

stop_nginx() {
    local pid
    pid=$(cat "$run/nginx.pid" 2>/dev/null) || return 0
    kill -QUIT "$pid" 2>/dev/null || true
    for _ in $(seq 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    rm -f "$run/nginx.pid"
}

# one consumer of a list (ingest:counters by default); consumer_pid is
# the last one started, consumer_pids all of them
start_consumer() {
    ${OTHER_CPUS:+taskset -c "$OTHER_CPUS"} \
    "$top/build/ingest-consumer" \
        --redis "redis://ingest-consumer@127.0.0.1:${consumer_redis_port:-$redis_port}" \
        --password-file "$run/consumer.password" \
        --queue "${1:-ingest:counters}" --db "$db" 2>>"$run/consumer.log" &
    consumer_pid=$!
    consumer_pids+=("$consumer_pid")
}

# a consumer per shard of ingest:counters (SHARDS), or the one
start_consumers() {
    local s
    if [ "${SHARDS:-1}" -gt 1 ]; then
        for s in $(seq 0 $((SHARDS - 1))); do
            start_consumer "ingest:counters:{$s}"
        done
    else
        start_consumer
    fi
}

# busy and user jiffies of one core so far (/proc/stat; busy: all but
# idle and iowait)
core_ticks() {
    awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 }' \
        /proc/stat
}

# CPU seconds the nginx workers have used so far
nginx_cpu() {
    local total=0 pid ticks
    for pid in $(pgrep -P "$(cat "$run/nginx.pid")"); do
        ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
        total=$((total + ticks))
    done
    echo "$total $(getconf CLK_TCK)" | awk '{printf "%.3f", $1 / $2}'
}

# SQLite's totals against what the load was answered 2xx for; see
# ci/check-totals (arguments: expected file, timeout, [--allow-loss])
check_totals() {
    "$top/ci/check-totals" "$db" "$@"
}

# a private PostgreSQL in $run/pg (initdb refuses to run as root: then
# the server runs as the postgres user), with fsync and synchronous
# commits on, as SQLite's synchronous=FULL
pg_start() {
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    pg_dir="$run/pg"
    pg_port=$(free_port)
    as_pg=()
    mkdir -p "$pg_dir"
    if [ "$(id -u)" = 0 ]; then
        chown postgres "$pg_dir"
        as_pg=(runuser -u postgres --)
    fi
    "${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -A trust -U ingest \
        -E UTF8 > "$pg_dir/initdb.log" 2>&1
    "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
        -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1" \
        start > /dev/null
    psql "postgresql://ingest@127.0.0.1:$pg_port/postgres" -qc \
        "CREATE DATABASE bench"
    pg_uri="postgresql://ingest@127.0.0.1:$pg_port/bench"
}

pg_stop() {
    [ -n "${pg_uri:-}" ] || return 0
    "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast -w stop \
        > /dev/null || true
    pg_uri=
}
