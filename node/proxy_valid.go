package node

import "encoding/json"

// validJSON is json.Valid, faster where a proxy needs it: a request body
// is mostly long strings, which it skips a byte at a time without a state
// machine. It answers what json.Valid answers for every input
// (FuzzValidJSON); nesting deeper than its stack it leaves to json.Valid.
func validJSON(b []byte) bool {
	var stack [64]byte // the open containers, '{' or '['
	depth := 0
	i := skipJSONSpace(b, 0)
	for {
		// A value starts at i.
		if i >= len(b) {
			return false
		}
		switch c := b[i]; c {
		case '{', '[':
			if depth == len(stack) {
				return json.Valid(b)
			}
			stack[depth] = c
			depth++
			if i = skipJSONSpace(b, i+1); i < len(b) && b[i] == c+2 { // '}' is '{'+2, ']' is '['+2
				depth--
				i++
				break
			}
			if c == '{' {
				if i = validJSONKey(b, i); i < 0 {
					return false
				}
			}
			continue
		case '"':
			i = validJSONString(b, i)
		case 't':
			i = validJSONLiteral(b, i, "true")
		case 'f':
			i = validJSONLiteral(b, i, "false")
		case 'n':
			i = validJSONLiteral(b, i, "null")
		default:
			i = validJSONNumber(b, i)
		}
		if i < 0 {
			return false
		}
		// After a value: the end, a closer, or a comma and the next value.
		for {
			i = skipJSONSpace(b, i)
			if depth == 0 {
				return i == len(b)
			}
			if i >= len(b) {
				return false
			}
			top := stack[depth-1]
			if b[i] == top+2 {
				depth--
				i++
				continue
			}
			if b[i] != ',' {
				return false
			}
			i = skipJSONSpace(b, i+1)
			if top == '{' {
				if i = validJSONKey(b, i); i < 0 {
					return false
				}
			}
			break
		}
	}
}

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// validJSONKey checks an object's key and its colon at i and returns where
// the value starts, or -1.
func validJSONKey(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	if i = validJSONString(b, i); i < 0 {
		return -1
	}
	if i = skipJSONSpace(b, i); i >= len(b) || b[i] != ':' {
		return -1
	}
	return skipJSONSpace(b, i+1)
}

// validJSONString checks the string whose quote is at i and returns the index
// past it, or -1.
func validJSONString(b []byte, i int) int {
	for j := i + 1; j < len(b); {
		switch c := b[j]; {
		case c == '"':
			return j + 1
		case c == '\\':
			if j+1 >= len(b) {
				return -1
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if j+6 > len(b) {
					return -1
				}
				for _, h := range b[j+2 : j+6] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return -1
					}
				}
				j += 6
			default:
				return -1
			}
		case c < 0x20:
			return -1
		default:
			j++
		}
	}
	return -1
}

func validJSONLiteral(b []byte, i int, lit string) int {
	if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
		return i + len(lit)
	}
	return -1
}

// validJSONNumber checks the number at i and returns the index past it, or -1.
func validJSONNumber(b []byte, i int) int {
	digits := func(j int) int { // past one or more digits at j, or -1
		k := j
		for k < len(b) && '0' <= b[k] && b[k] <= '9' {
			k++
		}
		if k == j {
			return -1
		}
		return k
	}
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digits(i)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		if i = digits(i + 1); i < 0 {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i = digits(i); i < 0 {
			return -1
		}
	}
	return i
}
