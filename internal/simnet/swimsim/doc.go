// Package swimsim runs swim cores on simnet: the adapter between the
// protocol core and the simulated network (Cluster, Node), membership views
// over it, and the scenarios that swim's simulation properties
// (swim/sim_test.go) and the full-size benchmarks (bench/swim_sim_test.go)
// both run, so that the two measure the same thing.
//
// A Scenario is a Cluster of LAN-profile cores with a Recorder of their
// membership events. Its methods inject one fault each (crashes, uniform
// loss, pauses, slowed nodes, a partition, a rolling restart, a bad node),
// or spread metadata changes, or measure steady-state bandwidth, and return
// what happened as data: durations, counts, recorded events, traffic. The
// callers decide what to assert or report. Only the set-up (NewScenario,
// Boot) stops a test, through TB, when a cluster cannot be built or does not
// converge.
//
// Everything runs in virtual time and is deterministic: the same seed and
// the same calls give the same run, packet for packet (Cluster.Trace). The
// wall clock is read only to report the simulator's own cost.
//
// Usage:
//
//	s := swimsim.NewScenario(t, seed, 100, swimsim.LAN)
//	s.Boot(t, 20*time.Second)
//	s.Settle()
//	for _, d := range s.Crashes([]int{7}, 20*time.Second).Detections {
//		// d.ToSuspect, d.ToDeadEverywhere, d.Missing ...
//	}
package swimsim
