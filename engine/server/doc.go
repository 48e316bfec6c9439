// Package server is the engine emulator behind `meshnode engine`: an
// engine.Model run on the real clock behind an OpenAI-compatible HTTP API,
// publishing its prefix cache's KV events in vLLM's format over ZMQ (with
// replay), so that precise routing can be tried and tested without GPUs.
//
// # API
//
//   - POST /v1/completions and POST /v1/chat/completions, streaming
//     (server-sent events, "data: {...}" per token, then "data: [DONE]")
//     or not. Read fields: model, prompt or messages, max_tokens (or
//     max_completion_tokens), stream, stream_options.include_usage; others
//     are ignored. The answer's usage has prompt_tokens, completion_tokens
//     and prompt_tokens_details.cached_tokens. The text is deterministic
//     filler, max_tokens tokens of it (finish_reason "length").
//   - GET /v1/models, GET /health (200), POST /reset_prefix_cache (as
//     vLLM's: empties the cache and publishes AllBlocksCleared), and
//     GET /stats (the model's counters, JSON).
//
// # Tokenizer
//
// Trivial and documented so that a gateway computes the same token ids: a
// prompt string is one token per UTF-8 byte, its id the byte's value
// (engine.AppendTokens); a prompt may also be an array of token ids, as
// OpenAI allows; a chat is tokenized as the concatenation of
// "role: content\n" for each message (engine.AppendChatText), a content
// given as parts being the concatenation of their texts.
//
// # Time
//
// A request is queued in the model at its arrival; its first token is sent
// when its prefill ends (queue wait + uncached tokens / prefill rate), then
// one token every 1/decode rate. Its prompt's blocks enter the cache and
// their BlockStored event is published when its prefill ends. A client
// that goes away cancels its request (the model frees its place). The
// model's time is the time since New; a timer on the real clock (the
// bubble's under testing/synctest) wakes it at its next change.
//
// # Limits
//
// A body above Config.MaxBodyBytes gets 413, a prompt above
// MaxPromptTokens or a max_tokens above MaxTokens 400, an unknown model
// 404, and a request that finds the model's queue full (engine
// Config.MaxQueue) 429 with Retry-After.
package server
