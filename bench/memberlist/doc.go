// Package memberlist measures meshnode's swim Runner and
// hashicorp/memberlist side by side, in one process, on real UDP and TCP
// sockets on 127.0.0.1, with the same probe, gossip, suspicion, retransmit
// and push-pull settings.
//
// It lives in its own Go module so that the product never depends on
// memberlist. Both implementations sit behind one small interface, cluster,
// and one procedure, runTrial, measures each of them the same way:
//
//   - bootstrap: every node joins through node 0 at once; the time until
//     every node knows all N;
//   - holes: the pairs (a, b) where a does not know b, a settling period
//     after the first node knew all N, and how long the last hole lasted;
//   - broadcast: every node sends a few user broadcasts at once, relayed
//     on first receipt and carried in the push-pull state meanwhile (both
//     swim layers send a payload only from the node that queued it, and
//     repair none); the time for each to reach every other node, and the
//     share that did by gossip alone and in the end;
//   - idle: the UDP and TCP payload bytes sent per node per second while
//     nothing happens;
//   - crash: one node stops without leaving; the time until every other
//     node considers it dead.
//
// The comparison runs as a test behind a flag: TestCompare with -compare
// runs N = 5, 20 and 50 with a few trials each and prints a markdown table;
// without the flag it runs a quick N = 5 trial of each and checks that
// meshnode leaves no hole, loses no broadcast and detects the crash. That
// quick run is what CI runs, inside this module:
//
//	go test -race -count=1 -timeout 5m ./...
package memberlist
