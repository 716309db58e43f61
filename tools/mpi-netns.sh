#!/usr/bin/env bash
# Two ranks on two simulated hosts (issue 15): network namespaces dpft-a and dpft-b joined by a
# veth pair (10.77.0.1 ↔ 10.77.0.2). mpirun runs in dpft-a and starts rank 1's daemon in dpft-b
# through a launch agent that plays ssh's part (`ip netns exec`), so every byte between the
# ranks crosses a real TCP/IP stack (`--mca btl tcp,self`). The run must log exactly what the
# same two ranks log on one host. Needs root (namespaces) and a built dpft.
# Usage: tools/mpi-netns.sh [path/to/dpft]   (default .build/release/dpft)
set -euo pipefail
cd "$(dirname "$0")/.."
dpft=$(realpath "${1:-.build/release/dpft}")
work=$(mktemp -d)
agent="$work/netns-agent.sh"

cleanup() {
    ip netns del dpft-a 2>/dev/null || true
    ip netns del dpft-b 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cleanup 2>/dev/null; work=$(mktemp -d); agent="$work/netns-agent.sh"

ip netns add dpft-a
ip netns add dpft-b
ip link add dpft-veth-a type veth peer name dpft-veth-b
ip link set dpft-veth-a netns dpft-a
ip link set dpft-veth-b netns dpft-b
ip -n dpft-a addr add 10.77.0.1/24 dev dpft-veth-a
ip -n dpft-b addr add 10.77.0.2/24 dev dpft-veth-b
for ns in dpft-a dpft-b; do
    ip -n "$ns" link set lo up
done
ip -n dpft-a link set dpft-veth-a up
ip -n dpft-b link set dpft-veth-b up

# mpirun calls the agent as `agent HOST COMMAND...`, as it would call ssh. The second host
# gets its own host name too (a UTS namespace), so Open MPI sees two nodes.
cat >"$agent" <<'AGENT'
#!/bin/sh
host=$1
shift
echo "$host" >>"$(dirname "$0")/agent-calls"
exec ip netns exec dpft-b unshare --uts sh -c "hostname dpft-b; $*"
AGENT
chmod +x "$agent"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
recipe=(recipe lora-layerwise --set training.epochs=null --set training.steps=3 --set privacy.noise_seed=7
        --set training.eval_every=0 --set output.export=null --set data.eval=null)
echo "== two ranks on one host"
mpirun -np 2 --oversubscribe --bind-to none "$dpft" "${recipe[@]}" --set output.directory="$work/one-host" >"$work/one-host.log" 2>&1
echo "== two ranks on two hosts (10.77.0.1 in dpft-a, 10.77.0.2 in dpft-b), TCP over the veth pair"
ip netns exec dpft-a unshare --uts sh -c "hostname dpft-a; exec mpirun -np 2 --host 10.77.0.1:1,10.77.0.2:1 \
    --mca plm_rsh_agent '$agent' --mca btl tcp,self --mca btl_tcp_if_include 10.77.0.0/24 \
    --mca oob_tcp_if_include 10.77.0.0/24 --bind-to none --display-map '$dpft' ${recipe[*]} --set output.directory='$work/two-hosts'" \
    >"$work/two-hosts.log" 2>&1 || { cat "$work/two-hosts.log"; exit 1; }
grep -q "Data for node: 10.77.0.2" "$work/two-hosts.log" && grep -qx 10.77.0.2 "$work/agent-calls" ||
    { echo "rank 1 did not run in dpft-b:"; cat "$work/two-hosts.log"; exit 1; }
echo "the agent started 10.77.0.2's daemon in dpft-b; mpirun's map:"
grep -A1 "Data for node" "$work/two-hosts.log" | grep -oE "Data for node: [^[:space:]]+|Process rank: [0-9]+" | paste - -
# Same ranks, same batches, same sums (two addends commute exactly): identical metrics.
strip() { sed -E 's/"seconds":[^,}]*,?//' "$1/metrics.jsonl"; }
if diff <(strip "$work/one-host") <(strip "$work/two-hosts") >/dev/null; then
    echo "identical metrics.jsonl (loss and ε of every step) on one host and across the veth pair:"
    cat "$work/two-hosts/metrics.jsonl"
else
    echo "metrics differ:"; diff <(strip "$work/one-host") <(strip "$work/two-hosts") || true; exit 1
fi
