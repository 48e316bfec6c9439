package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// promptGen makes the demo's prompts: conversations that share a few
// system prompts and grow turn by turn, as a chat gateway sees them. Each
// turn of a conversation repeats its whole history, so the worker that
// served the previous turn holds most of the next one.
type promptGen struct {
	rng     *rand.Rand
	systems []string
	convs   [][]string // each conversation's turns
	sys     []int
}

const demoConversations = 8

func newPromptGen(rng *rand.Rand) *promptGen {
	g := &promptGen{rng: rng}
	for i := range 3 {
		g.systems = append(g.systems, fmt.Sprintf("system prompt %d: you are a helpful assistant for team %d. ", i, i)+g.words(300))
	}
	g.convs = make([][]string, demoConversations)
	g.sys = make([]int, demoConversations)
	for c := range g.sys {
		g.sys[c] = c % len(g.systems)
	}
	return g
}

var demoWords = strings.Fields("gossip replica cache prefix token worker route model limit window member probe " +
	"suspect alive dead merge delta vector clock shard queue budget page index stream latency")

func (g *promptGen) words(n int) string {
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(demoWords[g.rng.IntN(len(demoWords))])
		b.WriteByte(' ')
	}
	return b.String()
}

// next returns the next prompt: the next turn of a random conversation,
// which starts over after eight turns.
func (g *promptGen) next() string {
	c := g.rng.IntN(len(g.convs))
	if len(g.convs[c]) >= 8 {
		g.convs[c] = nil
		g.sys[c] = g.rng.IntN(len(g.systems))
	}
	g.convs[c] = append(g.convs[c], fmt.Sprintf("user %d: ", len(g.convs[c]))+g.words(100+g.rng.IntN(100)))
	return g.systems[g.sys[c]] + strings.Join(g.convs[c], "")
}

// panelWidth keeps the terminal panel's lines from wrapping on an
// 80-column terminal.
const panelWidth = 79

// demoView shows the demo: a panel redrawn in place on a terminal, plain
// timestamped lines otherwise.
type demoView struct {
	w        io.Writer
	tty      bool
	drawn    int // lines of the last panel
	lastDraw time.Time
	lastLine time.Duration
	log      []string
}

func newDemoView(w io.Writer, tty bool) *demoView { return &demoView{w: w, tty: tty} }

// line reports an event.
func (v *demoView) line(el time.Duration, s string) {
	l := fmt.Sprintf("%7.2fs  %s", el.Seconds(), s)
	if !v.tty {
		fmt.Fprintln(v.w, l)
		return
	}
	v.log = append(v.log, l)
	if len(v.log) > 8 {
		v.log = v.log[1:]
	}
	if v.drawn == 0 {
		fmt.Fprintln(v.w, l) // before the show starts: setup lines
	}
}

// flush ends the panel so that what follows starts on a clean line.
func (v *demoView) flush() { v.drawn = 0 }

// update redraws the panel (terminal) or prints a status line each second
// (plain).
func (v *demoView) update(d *demo, el time.Duration) {
	if !v.tty {
		if el-v.lastLine >= time.Second {
			v.lastLine = el
			fmt.Fprintf(v.w, "%7.2fs  %s; %s\n", el.Seconds(), d.routingLine(), d.rulesLine())
			fmt.Fprintf(v.w, "%7.2fs  %s\n", el.Seconds(), d.limitLine())
		}
		return
	}
	if time.Since(v.lastDraw) < 100*time.Millisecond {
		return
	}
	v.lastDraw = time.Now()
	v.draw(d.panel(el, true))
}

func (v *demoView) draw(lines []string) {
	var b strings.Builder
	if v.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA\x1b[J", v.drawn)
	} else {
		b.WriteString("\n")
	}
	for _, l := range lines {
		// A wrapped line would break the count of lines to move up by.
		b.WriteString(shorten(l, panelWidth))
		b.WriteString("\x1b[K\n")
	}
	v.drawn = len(lines)
	io.WriteString(v.w, b.String())
}

// summary shows the final state.
func (v *demoView) summary(d *demo) {
	lines := d.panel(time.Since(d.start), false)
	if v.tty {
		v.draw(lines)
		v.drawn = 0
		return
	}
	fmt.Fprintln(v.w, "summary")
	for _, l := range lines {
		fmt.Fprintln(v.w, "  "+l)
	}
}

// panel is the state of the demo as lines; the event log only on a
// terminal, where it is not printed as it happens.
func (d *demo) panel(el time.Duration, live bool) []string {
	if live {
		el = min(el, d.duration)
	}
	var out []string
	title := fmt.Sprintf("meshnode demo: %d nodes on 127.0.0.1, %v of %v (Ctrl-C stops)", len(d.nodes), el.Round(100*time.Millisecond), d.duration)
	if !live {
		title = fmt.Sprintf("meshnode demo: %d nodes, ran %v", len(d.nodes), el.Round(100*time.Millisecond))
	}
	out = append(out, title, "", "membership, as each node sees it:")
	for _, dn := range d.nodes {
		if !dn.up {
			out = append(out, fmt.Sprintf("  %-8s down (killed without leaving)", dn.name))
			continue
		}
		out = append(out, fmt.Sprintf("  %-8s generation %d: %s", dn.name, dn.n.Generation(), dn.viewSummary()))
	}
	out = append(out, "", d.writeLine(), d.routingLine(), "  "+d.rulesLine())
	for _, r := range d.recent {
		out = append(out, "  "+r)
	}
	out = append(out, d.limitLine())
	var per []string
	for _, dn := range d.nodes {
		per = append(per, fmt.Sprintf("%s %d/%d", strings.TrimPrefix(dn.name, "node-"), dn.allowed, dn.denied))
	}
	out = append(out, "  allowed/denied by node: "+strings.Join(per, ", "))
	if !live && len(d.events) > 0 {
		out = append(out, "", "events:")
		for _, l := range d.events {
			out = append(out, "  "+l)
		}
	}
	if live && len(d.view.log) > 0 {
		out = append(out, "", "events:")
		for _, l := range d.view.log {
			out = append(out, "  "+l)
		}
	}
	return out
}

func (d *demo) writeLine() string {
	if len(d.writes) == 0 {
		return "writes: none measured yet"
	}
	var sum, mx time.Duration
	for _, w := range d.writes {
		sum += w
		mx = max(mx, w)
	}
	s := fmt.Sprintf("writes to reach every node: %d, last %v, mean %v, max %v", len(d.writes),
		d.writes[len(d.writes)-1].Round(100*time.Microsecond), (sum / time.Duration(len(d.writes))).Round(100*time.Microsecond), mx.Round(100*time.Microsecond))
	if d.writeLost > 0 {
		s += fmt.Sprintf(", %d not everywhere within %v", d.writeLost, demoWriteTimeout)
	}
	return s
}

func (d *demo) routingLine() string {
	if d.routes == 0 {
		return "routing: no routes yet"
	}
	pct := 0.0
	if d.pagesAll > 0 {
		pct = 100 * d.pagesHit / d.pagesAll
	}
	// Two ratios, each named for what it counts: routes the cache-hit rule
	// decided, and prompt pages the chosen worker held.
	return fmt.Sprintf("routing: %d routes, cache-hit decisions %.0f%% of routes, matched pages %.0f%% of prompt pages",
		d.routes, 100*float64(d.hits)/float64(d.routes), pct)
}

// rulesLine counts the decisions by the rule that made them.
func (d *demo) rulesLine() string {
	rules := make([]string, 0, len(d.rules))
	for r, n := range d.rules {
		rules = append(rules, fmt.Sprintf("%s %d", r, n))
	}
	slices.Sort(rules)
	return "decisions by rule: " + strings.Join(rules, ", ")
}

func (d *demo) limitLine() string {
	allowed, denied := 0, 0
	for _, dn := range d.nodes {
		allowed += dn.allowed
		denied += dn.denied
	}
	return fmt.Sprintf("rate limit %d per %v: %d allowed, %d denied; %d in this window",
		demoLimitN, demoLimitWindow, allowed, denied, d.windows[d.lastReset])
}
