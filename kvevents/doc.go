// Package kvevents reads and writes the KV-cache event streams that vLLM
// and SGLang publish over ZeroMQ, so that a node can follow what an engine
// really caches and evicts.
//
// # The stream
//
// An engine publishes multipart messages [topic, seq, payload] on a PUB
// socket: seq is an 8-byte big-endian counter per publisher (DecodeSeq,
// AppendSeq) and payload the msgpack of one EventBatch. An engine may also
// serve replay on a ROUTER socket: a client sends ["", start_seq] and
// receives ["", seq, payload] for every kept batch from start_seq on, then
// ["", -1, ""] (Replay).
//
// # The payload
//
// A batch is [ts, events, data_parallel_rank?] (array form) or
// {"ts", "events", "data_parallel_rank" | "attn_dp_rank"} (map form), and
// each event a tagged struct, as an array with its tag first or as a map
// with a "type" key:
//
//	BlockStored      block_hashes, parent_block_hash, token_ids, block_size, lora_id, medium, lora_name, extra_keys, group_idx, ...
//	BlockRemoved     block_hashes, medium, group_idx, ...
//	AllBlocksCleared (no fields)
//
// vLLM's older releases and SGLang write the array form (SGLang's
// BlockStored stops after lora_id, its BlockRemoved after block_hashes),
// vLLM's newer ones the map form; the forms may be mixed at any level.
// DecodeBatch accepts all of them: fields past the known ones and unknown
// map keys are skipped (forward compatibility), nil or absent optional
// fields are absent, and events of unknown tags are skipped and counted in
// Batch.Skipped. Block hashes are integers (kept as their two's-complement
// uint64) or byte strings (folded by FoldHash to the integer vLLM itself
// derives from them). docs/kvevents.md states exactly what is accepted.
//
// AppendBatch writes the array form as msgspec does (tag first, trailing
// defaults left out) and AppendBatchMap the map form, for the engine
// emulator and tests.
//
// # Limits
//
// The payload comes from another process over the network. DecodeBatch
// checks the payload size, the number of events, the hashes per event and
// the token ids per batch against Limits, and every length against the
// bytes that remain, before it allocates; nesting of skipped values is
// bounded too. Memory grows with the bytes received, never with what a
// header claims, and no input makes it panic (fuzz/kvevents_test.go).
//
// # Use
//
// Decoding reuses the caller's Batch:
//
//	var b kvevents.Batch
//	for {
//		m, err := sub.Recv()
//		...
//		if err := kvevents.DecodeBatch(&b, m.Payload, lim); err != nil { ... }
//		for i := range b.Events { ... }
//	}
//
// The codec (event.go, decode.go, encode.go, seq.go) is pure: no I/O, no
// clock, no goroutines. The ZeroMQ sockets (Subscriber, Replay, Publisher)
// live in zmq.go and use github.com/go-zeromq/zmq4.
package kvevents
