package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/meshnode/meshnode/engine"
)

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) { s.serveCompletion(w, r, false) })
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) { s.serveCompletion(w, r, true) })
	mux.HandleFunc("GET /v1/models", s.serveModels)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("POST /reset_prefix_cache", func(w http.ResponseWriter, r *http.Request) {
		s.ResetPrefixCache()
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("GET /stats", s.serveStats)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// completionRequest is the part of an OpenAI completion or chat request
// the emulator reads; other fields (temperature, ...) are accepted and
// ignored.
type completionRequest struct {
	Model               string          `json:"model"`
	Prompt              json.RawMessage `json:"prompt"`
	Messages            []chatMessage   `json:"messages"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Stream              bool            `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// badRequest is a problem with the request, answered with 400.
type badRequest string

func (e badRequest) Error() string { return string(e) }

// tokens returns the prompt's token ids: a string's bytes (engine's
// tokenizer), an array of token ids as given, or a one-element array of
// either; a chat's messages through engine.AppendChatText.
func (req *completionRequest) tokens(chat bool, limit int) ([]uint32, error) {
	if chat {
		if len(req.Messages) == 0 {
			return nil, badRequest("messages is empty")
		}
		var text []byte
		for i, m := range req.Messages {
			content, err := messageText(m.Content)
			if err != nil {
				return nil, badRequest(fmt.Sprintf("messages[%d].content: %v", i, err))
			}
			text = engine.AppendChatText(text, m.Role, content)
			if len(text) > limit {
				return nil, badRequest(fmt.Sprintf("prompt longer than %d tokens", limit))
			}
		}
		return engine.AppendTokens(nil, string(text)), nil
	}
	toks, err := promptTokens(req.Prompt, true)
	if err != nil {
		return nil, badRequest("prompt: " + err.Error())
	}
	if len(toks) > limit {
		return nil, badRequest(fmt.Sprintf("prompt of %d tokens is longer than %d", len(toks), limit))
	}
	return toks, nil
}

func promptTokens(raw json.RawMessage, top bool) ([]uint32, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, errors.New("missing")
	}
	switch raw[0] {
	case '"':
		var p string
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, err
		}
		if p == "" {
			return nil, errors.New("empty")
		}
		return engine.AppendTokens(nil, p), nil
	case '[':
		var ids []uint32
		if err := json.Unmarshal(raw, &ids); err == nil {
			if len(ids) == 0 {
				return nil, errors.New("empty")
			}
			return ids, nil
		}
		var batch []json.RawMessage
		if err := json.Unmarshal(raw, &batch); err != nil {
			return nil, err
		}
		if !top || len(batch) != 1 {
			return nil, errors.New("want a string, an array of token ids (0 to 4294967295), or one of these in an array of one: batches are not supported")
		}
		return promptTokens(batch[0], false)
	}
	return nil, errors.New("want a string or an array of token ids")
}

// messageText is a message's content: a string, null, or an array of
// parts whose "text" fields are concatenated.
func messageText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("want a string or an array of text parts")
	}
	var b []byte
	for _, p := range parts {
		b = append(b, p.Text...)
	}
	return string(b), nil
}

func (s *Server) serveCompletion(w http.ResponseWriter, r *http.Request, chat bool) {
	body, err := readBody(w, r, s.cfg.MaxBodyBytes)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", fmt.Sprintf("body larger than %d bytes", s.cfg.MaxBodyBytes))
			return
		}
		writeError(w, http.StatusBadRequest, "invalid_request_error", "reading the body: "+err.Error())
		return
	}
	p, aerr := s.parse(body, chat)
	if aerr != nil {
		writeError(w, aerr.code, aerr.typ, aerr.msg)
		return
	}
	id, results, err := s.submit(engine.Request{Tokens: p.tokens, OutputTokens: p.output})
	switch {
	case errors.Is(err, engine.ErrQueueFull):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "rate_limit_exceeded", "the engine's queue is full")
		return
	case errors.Is(err, errClosed):
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the engine is shutting down")
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	var res engine.Result
	select {
	case res = <-results:
	case <-r.Context().Done():
		s.cancel(id)
		return
	case <-s.closed:
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the engine is shutting down")
		return
	}
	g := s.newGeneration(chat, p.model, p.tokens, res)
	if p.stream {
		s.stream(w, r, g, p.usage)
		return
	}
	if !s.waitUntil(r, res.Done) {
		s.cancel(id)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(g.full())
}

// parsed is what the emulator takes from a request.
type parsed struct {
	model         string
	tokens        []uint32
	output        int
	stream, usage bool
}

// apiError is an answer other than 200.
type apiError struct {
	code     int
	typ, msg string
}

// parse reads a completion (or, if chat, chat completion) request body.
func (s *Server) parse(body []byte, chat bool) (parsed, *apiError) {
	var req completionRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return parsed{}, &apiError{http.StatusBadRequest, "invalid_request_error", "body: " + err.Error()}
	}
	p := parsed{model: req.Model, stream: req.Stream, usage: req.StreamOptions != nil && req.StreamOptions.IncludeUsage}
	if p.model == "" {
		p.model = s.cfg.Models[0]
	} else if !slices.Contains(s.cfg.Models, p.model) {
		return parsed{}, &apiError{http.StatusNotFound, "model_not_found", fmt.Sprintf("the model %q does not exist", p.model)}
	}
	toks, err := req.tokens(chat, s.cfg.MaxPromptTokens)
	if err != nil {
		return parsed{}, &apiError{http.StatusBadRequest, "invalid_request_error", err.Error()}
	}
	p.tokens = toks
	p.output = s.cfg.DefaultMaxTokens
	if req.MaxCompletionTokens != nil {
		p.output = *req.MaxCompletionTokens
	} else if req.MaxTokens != nil {
		p.output = *req.MaxTokens
	}
	if p.output < 1 || p.output > s.cfg.MaxTokens {
		return parsed{}, &apiError{http.StatusBadRequest, "invalid_request_error", fmt.Sprintf("max_tokens %d outside [1, %d]", p.output, s.cfg.MaxTokens)}
	}
	return p, nil
}

// readBody reads at most limit bytes of the body.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	return buf.Bytes(), err
}

// waitUntil waits until the model's time t; false if the client went away
// or the server closed first.
func (s *Server) waitUntil(r *http.Request, t time.Duration) bool {
	d := t - s.now()
	if d <= 0 {
		return true
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-r.Context().Done():
		return false
	case <-s.closed:
		return false
	}
}

// stream writes the answer as server-sent events: a chunk per token, the
// first at the end of the prefill and one every 1/DecodeTPS after, the
// usage chunk when asked for, then [DONE].
func (s *Server) stream(w http.ResponseWriter, r *http.Request, g *generation, usage bool) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	per := time.Duration(float64(time.Second) / s.cfg.Engine.DecodeTPS)
	var buf []byte
	for i := range g.res.OutputTokens {
		at := g.res.FirstToken + time.Duration(i)*per
		if i == g.res.OutputTokens-1 {
			at = g.res.Done
		}
		if at > s.now() && len(buf) > 0 {
			if _, err := w.Write(buf); err != nil {
				s.cancel(g.res.ID)
				return
			}
			_ = rc.Flush()
			buf = buf[:0]
		}
		if !s.waitUntil(r, at) {
			s.cancel(g.res.ID)
			return
		}
		buf = g.appendChunk(buf, i)
	}
	if usage {
		buf = g.appendUsageChunk(buf)
	}
	buf = append(buf, "data: [DONE]\n\n"...)
	_, _ = w.Write(buf)
	_ = rc.Flush()
}

func (s *Server) serveModels(w http.ResponseWriter, r *http.Request) {
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	list := struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{Object: "list", Data: []model{}}
	for _, m := range s.cfg.Models {
		list.Data = append(list.Data, model{ID: m, Object: "model", Created: s.origin.Unix(), OwnedBy: "meshnode"})
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) serveStats(w http.ResponseWriter, r *http.Request) {
	st := s.Stats()
	writeJSON(w, http.StatusOK, map[string]any{
		"submitted": st.Submitted, "rejected": st.Rejected, "started": st.Started,
		"completed": st.Completed, "cancelled": st.Cancelled,
		"input_tokens": st.InputTokens, "cached_tokens": st.CachedTokens,
		"busy_seconds": st.Busy.Seconds(), "prefill_busy_seconds": st.PrefillBusy.Seconds(),
		"queued": st.Queued, "running": st.Running, "cached_blocks": st.Blocks,
		"capacity_blocks": s.cfg.Engine.Blocks, "block_size": s.cfg.Engine.BlockTokens,
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// writeError answers in OpenAI's error shape.
func writeError(w http.ResponseWriter, code int, typ, msg string) {
	type body struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Param   any    `json:"param"`
		Code    int    `json:"code"`
	}
	writeJSON(w, code, struct {
		Error body `json:"error"`
	}{body{Message: msg, Type: typ, Code: code}})
}

// generation writes one answer: ids, filler text, usage.
type generation struct {
	chat    bool
	id      string
	model   []byte // JSON string
	created int64
	res     engine.Result
	mix     uint64
}

func (s *Server) newGeneration(chat bool, model string, toks []uint32, res engine.Result) *generation {
	s.mu.Lock()
	s.reqSeq++
	n := s.reqSeq
	s.mu.Unlock()
	prefix := "cmpl-"
	if chat {
		prefix = "chatcmpl-"
	}
	m, _ := json.Marshal(model)
	return &generation{
		chat: chat, id: prefix + strconv.FormatUint(n, 10), model: m, created: time.Now().Unix(),
		res: res, mix: engine.BlockHash(s.cfg.Seed, toks),
	}
}

// fillerWords are the generated text: token i of an answer is word
// fillerWords[h(seed, prompt, i) % len]. Plain ASCII, so it needs no JSON
// escaping.
var fillerWords = [...]string{
	"lorem ", "ipsum ", "dolor ", "sit ", "amet ", "consectetur ", "adipiscing ", "elit ",
	"sed ", "do ", "eiusmod ", "tempor ", "incididunt ", "ut ", "labore ", "et ",
}

func (g *generation) word(i int) string {
	x := g.mix + uint64(i+1)*0x9e3779b97f4a7c15
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	return fillerWords[x%uint64(len(fillerWords))]
}

func (g *generation) appendHead(b []byte, object string) []byte {
	b = append(b, `{"id":"`...)
	b = append(b, g.id...)
	b = append(b, `","object":"`...)
	b = append(b, object...)
	b = append(b, `","created":`...)
	b = strconv.AppendInt(b, g.created, 10)
	b = append(b, `,"model":`...)
	return append(b, g.model...)
}

func (g *generation) appendUsage(b []byte) []byte {
	r := g.res
	b = append(b, `"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(r.InputTokens), 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, int64(r.OutputTokens), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(r.InputTokens+r.OutputTokens), 10)
	b = append(b, `,"prompt_tokens_details":{"cached_tokens":`...)
	b = strconv.AppendInt(b, int64(r.CachedTokens), 10)
	return append(b, `}}`...)
}

// appendChunk appends the event of token i.
func (g *generation) appendChunk(b []byte, i int) []byte {
	last := i == g.res.OutputTokens-1
	b = append(b, "data: "...)
	if g.chat {
		b = g.appendHead(b, "chat.completion.chunk")
		b = append(b, `,"choices":[{"index":0,"delta":{`...)
		if i == 0 {
			b = append(b, `"role":"assistant",`...)
		}
		b = append(b, `"content":"`...)
		b = append(b, g.word(i)...)
		b = append(b, `"},"logprobs":null,"finish_reason":`...)
	} else {
		b = g.appendHead(b, "text_completion")
		b = append(b, `,"choices":[{"index":0,"text":"`...)
		b = append(b, g.word(i)...)
		b = append(b, `","logprobs":null,"finish_reason":`...)
	}
	if last {
		b = append(b, `"length"`...)
	} else {
		b = append(b, `null`...)
	}
	return append(b, "}]}\n\n"...)
}

func (g *generation) appendUsageChunk(b []byte) []byte {
	b = append(b, "data: "...)
	object := "text_completion"
	if g.chat {
		object = "chat.completion.chunk"
	}
	b = g.appendHead(b, object)
	b = append(b, `,"choices":[],`...)
	b = g.appendUsage(b)
	return append(b, "}\n\n"...)
}

// full is the non-streaming answer.
func (g *generation) full() []byte {
	var text []byte
	for i := range g.res.OutputTokens {
		text = append(text, g.word(i)...)
	}
	var b []byte
	if g.chat {
		b = g.appendHead(b, "chat.completion")
		b = append(b, `,"choices":[{"index":0,"message":{"role":"assistant","content":"`...)
		b = append(b, text...)
		b = append(b, `"},"logprobs":null,"finish_reason":"length"}],`...)
	} else {
		b = g.appendHead(b, "text_completion")
		b = append(b, `,"choices":[{"index":0,"text":"`...)
		b = append(b, text...)
		b = append(b, `","logprobs":null,"finish_reason":"length"}],`...)
	}
	b = g.appendUsage(b)
	return append(b, "}\n"...)
}
