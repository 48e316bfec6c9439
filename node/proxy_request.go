package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// completionRequest is what the proxy reads of an OpenAI completion or chat
// completion request: the model, whether the answer streams, and the
// prompt. Every other field travels to the engine untouched: the proxy
// forwards the body as it came.
type completionRequest struct {
	Model    string          `json:"model"`
	Stream   bool            `json:"stream"`
	Prompt   json.RawMessage `json:"prompt"`
	Messages []chatMessage   `json:"messages"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// contentPart is one part of a chat message's content array.
type contentPart struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// routingInput is the prompt as routing sees it: tokens when the request
// carries them, else text.
type routingInput struct {
	tokens []uint32
	text   []byte
}

// estTokens estimates the prompt's tokens: exact for tokens, about four
// bytes a token for text.
func (in routingInput) estTokens() int64 {
	if in.tokens != nil {
		return int64(len(in.tokens))
	}
	return int64(len(in.text)+3) / 4
}

// errPrompt reports a request whose prompt the proxy cannot read.
var errPrompt = errors.New("node: proxy: prompt")

// parseCompletion reads a completion (chat when chat is set) request body.
// A completion's prompt may be a string, an array of token IDs, or a batch
// (an array of either): a batch routes by its first prompt. A chat's
// messages route by their roles and text, in order, so that a
// conversation's next turn extends the previous turn's pages.
//
// With bytesTokens, a text prompt becomes token ids as meshnode engine
// tokenizes it: one token per byte, a chat being "role: content\n" per
// message; routing then matches the pages the engine's KV events report.
// Only the first maxPromptTokens tokens route.
func parseCompletion(body []byte, chat, bytesTokens bool) (completionRequest, routingInput, error) {
	var req completionRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return req, routingInput{}, fmt.Errorf("%w: malformed request: %v", errPrompt, err)
	}
	if err := ValidName("model", req.Model, 255); err != nil {
		return req, routingInput{}, fmt.Errorf("%w: %v", errPrompt, err)
	}
	var in routingInput
	var err error
	if chat {
		if len(req.Messages) == 0 {
			return req, in, fmt.Errorf("%w: messages: want at least one", errPrompt)
		}
		in.text, err = chatText(req.Messages, bytesTokens)
	} else {
		in, err = promptInput(req.Prompt)
	}
	if err != nil {
		return req, in, fmt.Errorf("%w: %v", errPrompt, err)
	}
	if bytesTokens && in.tokens == nil {
		text := in.text[:min(len(in.text), maxPromptTokens)]
		in.tokens = make([]uint32, len(text))
		for i, c := range text {
			in.tokens[i] = uint32(c)
		}
		in.text = nil
	}
	return req, in, nil
}

// promptInput reads a completion's prompt.
func promptInput(raw json.RawMessage) (routingInput, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return routingInput{}, errors.New("prompt: missing")
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return routingInput{}, fmt.Errorf("prompt: %v", err)
		}
		return routingInput{text: []byte(s)}, nil
	case '[':
		inner := bytes.TrimSpace(raw[1:])
		switch {
		case len(inner) > 0 && (inner[0] == '"' || inner[0] == '['):
			// A batch: route by its first prompt.
			var batch []json.RawMessage
			if err := json.Unmarshal(raw, &batch); err != nil {
				return routingInput{}, fmt.Errorf("prompt: %v", err)
			}
			if len(batch) == 0 {
				return routingInput{}, errors.New("prompt: empty batch")
			}
			if first := bytes.TrimSpace(batch[0]); len(first) > 0 && first[0] == '[' && len(bytes.TrimSpace(first[1:])) > 0 && bytes.TrimSpace(first[1:])[0] == '[' {
				return routingInput{}, errors.New("prompt: want a string, tokens, or a batch of either")
			}
			return promptInput(batch[0])
		default:
			var t tokenList
			if err := t.UnmarshalJSON(raw); err != nil {
				return routingInput{}, fmt.Errorf("prompt: %v", err)
			}
			if t == nil {
				t = tokenList{}
			}
			return routingInput{tokens: t}, nil
		}
	}
	return routingInput{}, errors.New("prompt: want a string, tokens, or a batch of either")
}

// chatText renders messages as routing text: each message's role, a
// newline, its text, and a record separator (0x1e), which no text part
// ends with, so that two conversations share pages only as far as they
// share messages. With engineTemplate, it is meshnode engine's chat
// template instead: "role: content\n" per message.
func chatText(msgs []chatMessage, engineTemplate bool) ([]byte, error) {
	var b []byte
	sep, end := []byte{'\n'}, byte(0x1e)
	if engineTemplate {
		sep, end = []byte(": "), '\n'
	}
	for i, m := range msgs {
		b = append(b, m.Role...)
		b = append(b, sep...)
		c := bytes.TrimSpace(m.Content)
		switch {
		case len(c) == 0 || string(c) == "null":
		case c[0] == '"':
			var s string
			if err := json.Unmarshal(c, &s); err != nil {
				return nil, fmt.Errorf("messages[%d].content: %v", i, err)
			}
			b = append(b, s...)
		case c[0] == '[':
			var parts []contentPart
			if err := json.Unmarshal(c, &parts); err != nil {
				return nil, fmt.Errorf("messages[%d].content: %v", i, err)
			}
			for _, p := range parts {
				if p.Type == "text" {
					b = append(b, p.Text...)
				}
			}
		default:
			return nil, fmt.Errorf("messages[%d].content: want a string or an array of parts", i)
		}
		b = append(b, end)
	}
	return b, nil
}
