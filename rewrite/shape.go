package rewrite

import "strings"

// shapeKey reduces a SQL string to its shape: the same string with every
// literal (string, dollar-quoted, bit, hex, number) replaced by one marker
// byte, comments removed and whitespace collapsed (to a newline where the
// whitespace held one, as that can join string literals). Two strings with
// the same shape parse to the same tree up to constant values, so they
// have the same description. It is a cache key only: what reaches the log
// comes from the parser. cacheable is false for strings too long to keep
// as a key.
func shapeKey(sql string) (key string, cacheable bool) {
	if len(sql) > 16<<10 {
		return "", false
	}
	var b strings.Builder
	b.Grow(len(sql))
	const lit = '\x01'
	space := byte(0) // pending whitespace: 0, ' ' or '\n'
	flush := func() {
		if space != 0 && b.Len() > 0 {
			b.WriteByte(space)
		}
		space = 0
	}
	n := len(sql)
	for i := 0; i < n; {
		c := sql[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v' || c == '\n':
			if c == '\n' {
				space = '\n'
			} else if space == 0 {
				space = ' '
			}
			i++
		case c == '-' && i+1 < n && sql[i+1] == '-':
			for i < n && sql[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < n && sql[i+1] == '*':
			depth := 0
			for i < n {
				if sql[i] == '/' && i+1 < n && sql[i+1] == '*' {
					depth++
					i += 2
				} else if sql[i] == '*' && i+1 < n && sql[i+1] == '/' {
					depth--
					i += 2
					if depth == 0 {
						break
					}
				} else {
					if sql[i] == '\n' {
						space = '\n'
					}
					i++
				}
			}
			if space == 0 {
				space = ' '
			}
		case c == '\'':
			flush()
			i = skipQuoted(sql, i, false)
			b.WriteByte(lit)
		case c == '"':
			flush()
			j := skipIdent(sql, i)
			b.WriteString(sql[i:j])
			i = j
		case c == '$' && i+1 < n && isDigit(sql[i+1]):
			flush()
			j := i + 1
			for j < n && isDigit(sql[j]) {
				j++
			}
			b.WriteString(sql[i:j]) // a parameter
			i = j
		case c == '$':
			flush()
			if j, ok := skipDollar(sql, i); ok {
				b.WriteByte(lit)
				i = j
			} else {
				b.WriteByte(c)
				i++
			}
		case isDigit(c) || (c == '.' && i+1 < n && isDigit(sql[i+1])):
			flush()
			i = skipNumber(sql, i)
			b.WriteByte(lit)
		case isIdentStart(c):
			flush()
			j := i
			for j < n && isIdentChar(sql[j]) {
				j++
			}
			word := sql[i:j]
			switch {
			case j < n && sql[j] == '\'' && len(word) == 1 && strings.ContainsRune("eEbBxXnN", rune(word[0])):
				// E'…', B'…', X'…', N'…'
				i = skipQuoted(sql, j, word[0] == 'e' || word[0] == 'E')
				b.WriteByte(lit)
			case j+1 < n && sql[j] == '&' && sql[j+1] == '\'' && (word == "u" || word == "U"):
				i = skipQuoted(sql, j+1, false)
				b.WriteByte(lit)
			default:
				b.WriteString(word)
				i = j
			}
		default:
			flush()
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), true
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || c >= 0x80 || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isIdentChar(c byte) bool  { return isIdentStart(c) || isDigit(c) || c == '$' }

// skipQuoted returns the index after the string literal opening at i
// (a doubled quote stands for one; with backslash, a backslash escapes
// the next byte).
func skipQuoted(s string, i int, backslash bool) int {
	for i++; i < len(s); i++ {
		switch {
		case backslash && s[i] == '\\':
			i++
		case s[i] == '\'':
			if i+1 < len(s) && s[i+1] == '\'' {
				i++
				continue
			}
			return i + 1
		}
	}
	return len(s)
}

// skipIdent returns the index after the quoted identifier opening at i.
func skipIdent(s string, i int) int {
	for i++; i < len(s); i++ {
		if s[i] == '"' {
			if i+1 < len(s) && s[i+1] == '"' {
				i++
				continue
			}
			return i + 1
		}
	}
	return len(s)
}

// skipDollar skips a dollar-quoted string opening at i ($$…$$ or
// $tag$…$tag$); ok is false when no tag opens there.
func skipDollar(s string, i int) (int, bool) {
	j := i + 1
	for j < len(s) && s[j] != '$' {
		if !isIdentChar(s[j]) || s[j] == '$' || (j == i+1 && isDigit(s[j])) {
			return 0, false
		}
		j++
	}
	if j >= len(s) {
		return 0, false
	}
	tag := s[i : j+1]
	end := strings.Index(s[j+1:], tag)
	if end < 0 {
		return len(s), true
	}
	return j + 1 + end + len(tag), true
}

// skipNumber returns the index after the numeric literal at i: digits
// (with _ separators, 0x/0o/0b prefixes), a fraction and an exponent.
func skipNumber(s string, i int) int {
	j := i
	if s[j] == '0' && j+1 < len(s) && strings.ContainsRune("xXoObB", rune(s[j+1])) {
		j += 2
		for j < len(s) && (isIdentChar(s[j])) {
			j++
		}
		return j
	}
	for j < len(s) && (isDigit(s[j]) || s[j] == '_') {
		j++
	}
	if j < len(s) && s[j] == '.' && !(j+1 < len(s) && s[j+1] == '.') {
		j++
		for j < len(s) && (isDigit(s[j]) || s[j] == '_') {
			j++
		}
	}
	if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
		k := j + 1
		if k < len(s) && (s[k] == '+' || s[k] == '-') {
			k++
		}
		if k < len(s) && isDigit(s[k]) {
			j = k
			for j < len(s) && isDigit(s[j]) {
				j++
			}
		}
	}
	return j
}
