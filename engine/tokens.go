package engine

// The emulator's tokenizer is trivial on purpose, so that a gateway can
// compute the same token ids (and so the same block hashes) without a
// model's vocabulary: one token per byte of the UTF-8 text, its id the
// byte's value (0-255).

// AppendTokens appends the token ids of text to dst: one per byte.
func AppendTokens(dst []uint32, text string) []uint32 {
	dst = growTokens(dst, len(text))
	for i := 0; i < len(text); i++ {
		dst = append(dst, uint32(text[i]))
	}
	return dst
}

// AppendChatText appends one chat message as the emulator's chat template
// writes it, "role: content\n", to dst. A chat's prompt is the
// concatenation of its messages in order, tokenized by AppendTokens.
func AppendChatText(dst []byte, role, content string) []byte {
	dst = append(dst, role...)
	dst = append(dst, ": "...)
	dst = append(dst, content...)
	return append(dst, '\n')
}

func growTokens(dst []uint32, n int) []uint32 {
	if cap(dst)-len(dst) < n {
		g := make([]uint32, len(dst), len(dst)+n)
		copy(g, dst)
		return g
	}
	return dst
}
