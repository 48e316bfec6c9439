// Package faults is the real-process fault suite: it builds cmd/meshnode,
// starts real `meshnode agent` processes and hurts them the way a crash, a
// stalled machine, a cut network or a stranger would, then checks the
// promises of README and DESIGN.md on what the processes answer over
// their HTTP API.
//
// The package holds tests only. They run when MESHNODE_FAULTS is set:
//
//	MESHNODE_FAULTS=short go test -count=1 -v -timeout 15m ./bench/faults/   # what .ci/run runs
//	MESHNODE_FAULTS=full  go test -count=1 -v -timeout 3h  ./bench/faults/   # by hand
//
// and skip with that hint otherwise, so that `go test ./...` stays fast
// (the history checker's own tests always run). Short mode runs each
// scenario once at N = 5 with the lan profile (the partition 1 s after
// forming only, with the local profile too; the oversized headers on
// channel D only; the 5 s stop only; 5 rejected bodies; 5 s of garbage):
// five to six minutes on two busy cores. Full mode runs every scenario
// at N = 5 and 20 with the lan and local profiles, MESHNODE_FAULTS_RUNS
// times each (default 3), and adds the partitions at the moment of forming
// and 20 s after it, the headers on channels S and A, the 30 s stop, 20
// rejected bodies and 10 s of garbage: about 15 minutes per run. Every
// measured figure is logged on a line that starts with FIGURE.
//
// The tests assert the targets of issue 10, so a scenario fails while
// the product misses its target; a failure message names the item. Full
// mode holds timing figures (detection, heal) to the targets themselves;
// short mode, which CI runs once per scenario on a machine that may be
// busy, logs a figure over its target and fails only past twice the
// target, still far below what the bugs cost (30 s to never, 20-40 s).
//
// # Faults
//
//   - kill -9, SIGSTOP/SIGCONT, SIGTERM (graceful leave), restarts with the
//     same --data-dir;
//   - partitions: link-down between two bridges. Every agent runs in a
//     network namespace of its own with one veth to a bridge of its side;
//     the two bridges live in a switch namespace and are joined by one veth
//     pair, which the test sets down to cut and up to heal. Addresses are
//     in 10.213.0.0/24, used only inside these namespaces, which have no
//     other link: nothing routes to a real network. The namespaces are
//     created by each test and removed on every exit path; partition tests
//     skip with the reason when not root or when `ip` is missing. The test
//     reaches an agent's API (on the loopback of its namespace) by dialing
//     from an OS thread switched into that namespace (setns);
//   - hostile connections to every port: UDP and TCP garbage, stream frame
//     headers that claim 16 MiB - 1 bytes and then fall silent, idle
//     connections that never send a byte, half-open connections, API
//     requests with 50 MB bodies;
//   - a joiner with the wrong gossip key or cluster label;
//   - engine KV events (issue 12): `meshnode engine` processes (small LRU
//     caches, KV events and replay on 127.0.0.1) registered as workers with
//     `meshnode workers put ... --kv-events ... --kv-replay ...`; prompts
//     sent to the engines, caches filled past capacity, POST
//     /reset_prefix_cache, kill -9 of the agent subscribed to an engine
//     while the engine publishes, an engine cut off (a proxy of its
//     endpoints closes and resets connections) and SIGSTOP/SIGCONT of an
//     engine, both past a short --kv-grace, and hostile event endpoints
//     (garbage, a ZMTP frame header of 2^62 bytes, one of 16 MiB - 1
//     bytes and then silence, a listener that never answers). Short mode
//     runs the routing, eviction and clear, and kill scenarios at N = 4
//     with the local profile (seconds each); full mode runs them all at
//     N = 3 and 5 with the lan and local profiles;
//
// # Checkers
//
//   - history: every acknowledged PUT and DELETE is recorded with the wall
//     clock times it was sent and acknowledged (the API gives no stamp on a
//     write). Once healed and quiet, every node must hold, for every key, the
//     outcome of a write that no other acknowledged write of the key
//     definitely followed (sent after it was acknowledged), and all nodes
//     must hold the same state: no acknowledged write lost, no deleted key
//     resurrected;
//   - memory: heap (go_memstats_heap_alloc_bytes from /metrics) and
//     resident size (VmRSS of /proc/PID/status) sampled during the resource
//     attacks and compared with bounds;
//   - time: detection and heal times measured by polling /v1/members on
//     every node, compared with the targets.
//   - engine caches: the test keeps a replica of each engine's LRU cache
//     (package engine's Cache, fed the same prompts in the same order, one
//     request at a time; its size is checked against the engine's GET
//     /stats). Every agent's index must hold as many engine entries and
//     holder pages as the engines cache blocks, and route every prompt
//     sent to the engine that caches at least half of it, with exactly the
//     pages that engine caches and sources ["events"]; exactly one agent
//     streams each engine, and all agents name it.
//
// Processes are started in their own process group with a parent-death
// signal, and every test kills and reaps its agents (SIGKILL to the group)
// in its cleanup, whatever the outcome. All waits poll with a deadline.
package faults
