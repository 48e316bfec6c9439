// Package swim implements cluster membership and failure detection: the
// SWIM protocol with the Lifeguard refinements, as a deterministic state
// machine with no I/O.
//
// # The core
//
// A Core is one member's protocol state. It never reads the wall clock,
// starts no goroutines and opens no sockets: every input carries the current
// time, randomness comes from the *rand.Rand given to NewCore, and every
// effect is returned as data. The same configuration, seed and inputs give
// the same outputs, byte for byte.
//
// Inputs:
//
//   - HandlePacket(now, from, msg): one decoded wire message received over
//     UDP (the runner splits compound packets and decodes them);
//   - HandleStream(now, from, req) -> resp: a stream exchange a peer opened
//     over TCP (push-pull or TCP ping); the runner writes resp back;
//   - StreamDone(now, id, resp, err): the outcome of a stream the core asked
//     for;
//   - Tick(now): timers; call it at Ready().Next;
//   - Join, SetSeeds, Leave, SetMeta, Broadcast: the embedder's requests
//     (Join makes one attempt; retrying with backoff is the runner's job).
//
// Output: Ready() drains the packets to send (each within the packet
// budget: a primary message plus piggybacked broadcasts), the streams to
// open, the events (join, update, suspect, alive, dead, leave), the Data
// payloads and push-pull states received for the layer above, and the time
// of the next Tick. The runner (goroutines, sockets, timers, DNS, the bounded
// event channel) lives in package swimnet; this package has no I/O, which
// internal/layering enforces.
//
// Ownership: messages passed in are borrowed for the call (the core copies
// what it keeps, so the runner may decode into reused messages); everything
// Ready returns belongs to the runner, except that one broadcast message may
// appear in several packets and must not be modified.
//
// # Streams
//
// A stream exchange is one request (a list of messages) and at most one
// reply, over TCP in production and modelled by the simulator:
//
//   - TCP ping: [Ping] -> [Ack], opened by a probe whose direct ping timed
//     out, with the probe's deadline;
//   - push-pull: [PushPull, Members{own record}, Digest{every member known},
//     Data{state}?] -> [PushPull, Members{records the requester lacks or
//     holds older}, Digest{entries whose records the server wants}, Data?];
//     the requester then opens a one-way [PushPull, Members{wanted
//     records}]. Data with Kind 0 carries the StateDelegate's opaque state.
//
// # Mechanisms
//
// Round-robin probing over a shuffled list, new members at random
// positions; a direct ping with a per-peer adaptive timeout; on timeout,
// indirect pings through k members that nack when they cannot reach the
// target (after four fifths of their unscaled timeout for it, whatever
// their health, so that the nack arrives before the requester's probe
// ends; an ack that comes later is still passed on), and a TCP ping in
// parallel (a member that answers only over TCP is
// flagged Member.TCPOnly and counted, not suspected). Lifeguard: the local
// health multiplier scales probe interval and timeouts; a suspicion starts
// at its maximum timeout and shrinks with independent confirmations; the
// suspect is told first (buddy system). A suspicion still running after
// the minimum timeout with fewer confirmations than expected sends the
// accusation back to its accusers (again every half minimum timeout); one
// that holds the member dead answers with its verdict (when many members
// fail at once, much of the gossip goes to failed members, and the
// confirmations and death news can miss an observer). Identity is (name, generation); a
// higher generation wins over any incarnation of an older one; a member
// refutes accusations with a higher incarnation and never accepts worse news
// about itself; accusations about unknown or newer members are forwarded.
//
// Self-isolation guard: a node whose health is poor, whose recent probes got
// no answer at all (neither ack nor nack), or that suspects a large share of
// the cluster with no one confirming assumes it is the problem: it issues no
// death verdicts, does not refute (so a broken node is removed once instead
// of flapping) and re-contacts its seeds. Evidence from other members
// outweighs the guard, so that survivors of correlated failures and the
// sides of a partition keep their verdicts: a nack resets the silence count;
// a suspicion another member confirmed is not counted as the node's own;
// while other members confirm its suspicions, neither the share rule nor
// the health rule applies (nor are silent relays charged to its health).
// A relay's nack counts as evidence from another member, and when every
// relay nacked, they confirm the suspicion. A suspicion expects only as
// many confirmations as there are members left to send them (alive, not
// suspect). Health charged for relays that did not nack is given back when
// those relays turn out to have failed, and the health a total silence
// cost is given back when answers return (if nothing at all arrived until
// the silence made the node distrust itself, and the answer comes within
// IsolationProbes probe intervals of the first packet heard: after a heal,
// the first datagrams a node sends are often lost while its peers' TCP
// re-dials already reach it; a pause of the process during the silence
// does not end it). Each packet or stream heard after such a silence makes
// the probe in progress ping its target again, at most once per
// ProbeTimeout, rather than wait out its slowed timeout. While other
// members confirm its suspicions, a node's probes are not slowed by its
// health; when, besides, at least two members are suspect and the
// suspects together with the relays that failed to answer its probes are
// an eighth of the cluster (many members failed at once), it probes at
// twice the rate, and a lone relay's nack confirms. Side pings (at most eight
// per probe, without indirect probes, at no cost to health): while at least
// two members are suspect and either an eighth of the cluster is or one is
// the node's own accusation, it pings each member another accuses as soon
// as it hears the accusation, and if no ack comes confirms and tells the
// accuser directly (gossip to random members rarely reaches the few
// survivors of a mass failure); at the fast rate, each probe also pings
// further members in probe order (one per four suspects) and suspects
// those that do not answer, sending each new suspicion to the member that
// last confirmed one. A probe whose relays were all silent starts a
// discovery sweep: the node pings every member alive or suspect in probe
// order (at most 256), sixteen every half probe interval whatever its
// health, until one answers, to find those still up (these pings accuse
// no one unless others already confirm its suspicions); a member that
// answers is sent its unconfirmed accusations, and a node whose probes get
// no answer at all sends them to any member that pings it. Stats counts
// Sweeps. The first
// confirmation after a time without any brings a probe slowed by health
// back to the unslowed schedule. Stats counts SidePings and
// SideSuspicions. A slowed probe re-pings its
// target every interval while others confirm. A node that distrusts itself
// and hears from another member runs a link check (at most once per probe
// interval): it pings six random members at once (four in the smallest
// clusters), and if every one
// answers directly, its links work (a partition healed): its health is
// given back, its suspicions restart with their accusations gossiped
// afresh, and it trusts itself again. A node on a lossy link practically
// never passes (at 80% loss, six at once about 4 in a billion). A node also trusts
// itself again once its last probe was answered and either its health is
// back to 0 or another member has confirmed one of its suspicions since it
// began to distrust itself; it then refutes the accusations it withheld at
// once. Each change
// is reported as an EventIsolated (with a Reason) or EventRecovered, the
// first withheld refutation of each period as an EventRefuteWithheld, and
// Stats counts them. A gap between inputs above Config.PauseThreshold means
// the process was paused: the probes and timers that ran out meanwhile are
// not judged, and the node re-announces itself.
//
// Dissemination piggybacks broadcasts on every packet (but pings to
// suspects, which carry their accusation only) and gossips to a few random
// alive members and one suspect, which is told its own accusation in every
// round (an ack to a suspect's ping carries it too: the copies gossiped
// when the suspicion was raised may all have gone to the far side of a
// partition); each broadcast is sent max(6, 4*ceil(log10(N+1))) times
// (a node's refutations three times as many: a node that is accused is often
// one whose packets get lost, and a refutation that escapes only after the
// death verdict revives the node to be removed again),
// alive news before suspect/dead before Data, and newer news about a member
// replaces older news in the queue. Push-pull sends a digest first and only
// the records that differ travel back. Dead members are re-dialled every
// Config.RedialInterval (scaled above 16 members, at most two in flight, not
// in the first three probe intervals after the verdict) so that split halves
// merge within seconds of a heal; tombstones are reaped after
// Config.ReapTimeout.
//
// swim imports wire only; package swimnet runs it over the network.
package swim
