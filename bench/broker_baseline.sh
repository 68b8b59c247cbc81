#!/usr/bin/env bash
# broker_baseline.sh - figure 1: what mosquitto itself delivers on this
# machine (DESIGN §9 reference: ~42 000 msg/s to a bare subscriber from 1000
# QoS 1 publishers, ~100 000-137 000 msg/s at QoS 0, one hop p50 ~0.07 ms /
# p99 ~0.5 ms at 10 000 msg/s).
#
#   bench/broker_baseline.sh [--quick] [--keep] [--build DIR]
#
# For N = 100 and N = 1000 publishers (one loadgen process, one epoll loop,
# 120-byte payloads, QoS 1 with 16 PUBACKs in flight per publisher like the
# agent) and one bare subscriber (bench/loadgen.c's raw client):
#   thr-qos1     unpaced, subscriber announcing Receive Maximum 65535:
#                the broker's own limit
#   thr-qos1-mosq-rm20  the same received by libmosquitto 2.0 itself
#                (loadgen --client mosq) with its default Receive Maximum
#                20, which lib/mqtt.c, hence the collector, keeps: the
#                broker may have only 20 unacknowledged messages out to it
#   thr-qos1-mosq-rm65535  (N=1000) libmosquitto with
#                MOSQ_OPT_RECEIVE_MAXIMUM 65535: the one-option difference
#   thr-qos0     unpaced QoS 0
#   lat-qos1 / lat-qos0   10 000 msg/s offered over the N publishers; the
#                subscriber timestamps each message (send time embedded)
# Prints each figure next to the DESIGN reference as a ratio, the CPU use of
# broker, publishers and subscriber over the measurement window (who is
# saturated), and the machine's other load at start and end.
# Default: 2 s warm-up + 6 s window per run, 11 runs (~2.5 min); --quick:
# QoS 1 throughput for N=100 and 1000 and QoS 1 latency for N=1000 only,
# 1 + 3 s (~25 s).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_init broker_baseline "$@"
bench_build loadgen

if ((QUICK)); then WARM=1 DUR=3; else WARM=2 DUR=6; fi
LAT_RATE=10000
REF_QOS1=42000 REF_QOS0=100000 REF_P50=70 REF_P99=500

bench_machine start
bench_broker
echo "# runs: warm-up ${WARM}s, window ${DUR}s; payload 120 B; publisher window 16 (QoS 1)"

run()
{
    local label=$1 qos=$2 n=$3 rate=$4 rm=$5 client=${6:-raw}
    local common="--qos $qos --warmup $WARM --duration $DUR"
    loadgen_pair "$label" "$common --client $client --receive-max $rm --linger 1" \
        "$common --clients $n --window 16 --rate $rate --size 120" >/dev/null || true
    local s=$NW_WORK/$label.sub p=$NW_WORK/$label.pub
    printf '%-28s %5s %4s %8s %8s %10s %10s %7s %5s %5s\n' "$label" "$n" "$qos" \
        "$(fmt0 "$(kv rate "$p")")" "$(fmt0 "$(kv rate "$s")")" "$(kv p50_us "$s")" \
        "$(kv p99_us "$s")" "$(kv "cpu_pid$BROKER_PID" "$s")" "$(kv cpu_self "$p")" \
        "$(kv cpu_self "$s")"
}

printf '%-28s %5s %4s %8s %8s %10s %10s %7s %5s %5s\n' run pubs qos sent/s recv/s p50_us \
    p99_us broker% pub% sub%
for n in 100 1000; do
    run "thr-qos1-n$n" 1 "$n" 0 65535
    if ((!QUICK)); then
        run "thr-qos1-mosq-rm20-n$n" 1 "$n" 0 20 mosq
        ((n == 1000)) && run "thr-qos1-mosq-rm65535-n$n" 1 "$n" 0 65535 mosq
        run "thr-qos0-n$n" 0 "$n" 0 65535
        run "lat-qos0-n$n" 0 "$n" "$LAT_RATE" 65535
    fi
    ((QUICK && n == 100)) || run "lat-qos1-n$n" 1 "$n" "$LAT_RATE" 65535
done
echo "# thr-*: publishers unpaced (QoS 1: 16 in flight each; QoS 0: TCP back-pressure only, an"
echo "#   overload: the broker queues what it cannot deliver, so latency there is queueing);"
echo "#   lat-*: 10000 msg/s offered; p50/p99 one hop, publisher send() to subscriber parse."
echo "# broker%/pub%/sub%: CPU of each process over the subscriber's window, % of one core."


echo
echo "## broker baseline vs DESIGN §9 (ratio = measured / reference; same run, same machine)"
r()
{
    kv "$1" "$NW_WORK/$2.sub"
}
N_BIG=1000
q1=$(r rate "thr-qos1-n$N_BIG")
q1s=$(r rate "thr-qos1-n100")
p50=$(r p50_us "lat-qos1-n$N_BIG")
p99=$(r p99_us "lat-qos1-n$N_BIG")
printf '%-44s %12s %12s %7s\n' figure measured reference ratio
printf '%-44s %12s %12s %7s\n' "QoS 1 msg/s to bare sub, 1000 pubs" "$(fmt0 "$q1")" $REF_QOS1 "$(ratio "$q1" $REF_QOS1)"
printf '%-44s %12s %12s %7s\n' "QoS 1 msg/s to bare sub, 100 pubs" "$(fmt0 "$q1s")" $REF_QOS1 "$(ratio "$q1s" $REF_QOS1)"
if ((!QUICK)); then
    q1rm=$(r rate "thr-qos1-mosq-rm20-n$N_BIG")
    q1rmf=$(r rate "thr-qos1-mosq-rm65535-n$N_BIG")
    q0=$(r rate "thr-qos0-n$N_BIG")
    printf '%-44s %12s %12s %7s\n' "QoS 1 msg/s, libmosquitto sub RM 20, 1000" "$(fmt0 "$q1rm")" "$(fmt0 "$q1")" "$(ratio "$q1rm" "$q1")"
    printf '%-44s %12s %12s %7s\n' "QoS 1 msg/s, libmosquitto sub RM 65535, 1000" "$(fmt0 "$q1rmf")" "$(fmt0 "$q1")" "$(ratio "$q1rmf" "$q1")"
    printf '%-44s %12s %12s %7s\n' "QoS 0 msg/s to bare sub, 1000 pubs" "$(fmt0 "$q0")" $REF_QOS0 "$(ratio "$q0" $REF_QOS0)"
    printf '%-44s %12s %12s %7s\n' "QoS 0 one hop p50 us at 10k msg/s (Nagle on)" "$(r p50_us "lat-qos0-n$N_BIG")" $REF_P50 "$(ratio "$(r p50_us "lat-qos0-n$N_BIG")" $REF_P50)"
fi
printf '%-44s %12s %12s %7s\n' "QoS 1 one hop p50 us at 10k msg/s, 1000" "$p50" $REF_P50 "$(ratio "$p50" $REF_P50)"
printf '%-44s %12s %12s %7s\n' "QoS 1 one hop p99 us at 10k msg/s, 1000" "$p99" $REF_P99 "$(ratio "$p99" $REF_P99)"
echo
bench_machine end
summary "qos1_1000=$(fmt0 "$q1")" "qos1_100=$(fmt0 "$q1s")" "qos1_libmosq_rm20_1000=$(fmt0 "${q1rm:-}")" \
    "qos1_libmosq_rm65535_1000=$(fmt0 "${q1rmf:-}")" \
    "qos0_1000=$(fmt0 "${q0:-}")" "p50_us=$p50" "p99_us=$p99" "load=$(cut -d' ' -f1 /proc/loadavg)"
