package rules

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// The rules file is decoded from yaml.v3's node tree by the strict decoder
// below rather than by yaml.Decoder with KnownFields(true): it rejects the
// same things (unknown keys, wrong types) and also duplicate keys, and every
// message carries the line and column of the key or value at fault and names
// what it belongs to, which KnownFields' "line N: field x not found in type
// rules.fileRole" does not.

// nodeDecoder is implemented by file types that decode themselves (scalar
// shorthands, ordered maps). They report their own errors.
type nodeDecoder interface {
	decodeYAML(d *decoder, n *yaml.Node, ctx string)
}

type decoder struct {
	errs *errList
}

func posOf(n *yaml.Node) Pos { return Pos{Line: n.Line, Col: n.Column} }

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "empty"
		case "!!int", "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		}
		return "a string"
	}
	return "unexpected YAML"
}

var nodeDecoderType = reflect.TypeOf((*nodeDecoder)(nil)).Elem()

// decode fills out (a pointer) from n. ctx names what n is, for messages
// ("role \"sales_rep\"").
func (d *decoder) decode(n *yaml.Node, out any, ctx string) {
	d.decodeValue(n, reflect.ValueOf(out).Elem(), ctx, "")
}

func (d *decoder) decodeValue(n *yaml.Node, v reflect.Value, ctx, noun string) {
	n = resolveAlias(n)
	if v.CanAddr() && v.Addr().Type().Implements(nodeDecoderType) {
		nd := v.Addr().Interface().(nodeDecoder)
		if m, ok := nd.(interface{ setNoun(string) }); ok {
			m.setNoun(noun)
		}
		nd.decodeYAML(d, n, ctx)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return
		}
		p := reflect.New(v.Type().Elem())
		d.decodeValue(n, p.Elem(), ctx, noun)
		v.Set(p)
	case reflect.Struct:
		d.decodeStruct(n, v, ctx)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errs.add(posOf(n), "%s must be a list, not %s", ctx, kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decodeValue(c, s.Index(i), fmt.Sprintf("item %d of %s", i+1, ctx), noun)
		}
		v.Set(s)
	case reflect.String:
		if s, ok := d.scalar(n, ctx); ok {
			v.SetString(s)
		}
	case reflect.Int:
		if s, ok := d.scalar(n, ctx); ok {
			i, err := strconv.Atoi(s)
			if err != nil || n.Tag != "!!int" {
				d.errs.add(posOf(n), "%s must be a whole number, not %q", ctx, s)
				return
			}
			v.SetInt(int64(i))
		}
	case reflect.Bool:
		if s, ok := d.scalar(n, ctx); ok {
			var b bool
			if n.Tag != "!!bool" || n.Decode(&b) != nil {
				d.errs.add(posOf(n), "%s must be true or false, not %q", ctx, s)
				return
			}
			v.SetBool(b)
		}
	default:
		panic("rules: no decoder for " + v.Type().String())
	}
}

// scalar returns the text of a non-empty scalar node.
func (d *decoder) scalar(n *yaml.Node, ctx string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errs.add(posOf(n), "%s must be a single value, not %s", ctx, kindName(n))
		return "", false
	}
	if n.Tag == "!!null" {
		d.errs.add(posOf(n), "%s is empty", ctx)
		return "", false
	}
	return n.Value, true
}

// mappingPairs checks that n is a mapping with string keys and no duplicates
// and returns its key and value nodes.
func (d *decoder) mappingPairs(n *yaml.Node, ctx string) (keys, vals []*yaml.Node, ok bool) {
	if n.Kind != yaml.MappingNode {
		if ctx == "" {
			d.errs.add(posOf(n), "the rules file must be a mapping of sections, not %s", kindName(n))
			return nil, nil, false
		}
		d.errs.add(posOf(n), "%s must be a mapping, not %s", ctx, kindName(n))
		return nil, nil, false
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolveAlias(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag == "!!null" {
			d.errs.add(posOf(k), "keys in %s must be names, not %s", ctx, kindName(k))
			continue
		}
		if k.Value == "<<" && k.Tag == "!!merge" {
			d.errs.add(posOf(k), "merge keys (<<) are not supported in %s; repeat the keys", ctx)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errs.add(posOf(k), "duplicate key %q in %s (first at line %d)", k.Value, ctx, first.Line)
			continue
		}
		seen[k.Value] = k
		keys = append(keys, k)
		vals = append(vals, val)
	}
	return keys, vals, true
}

type fieldInfo struct {
	index int
	noun  string
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, ctx string) {
	t := v.Type()
	if f, ok := t.FieldByName("At"); ok && f.Type == reflect.TypeOf(Pos{}) {
		v.FieldByIndex(f.Index).Set(reflect.ValueOf(posOf(n)))
	}
	keys, vals, ok := d.mappingPairs(n, ctx)
	if !ok {
		return
	}
	fields := map[string]fieldInfo{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = fieldInfo{index: i, noun: f.Tag.Get("noun")}
		names = append(names, name)
	}
	for i, k := range keys {
		fi, ok := fields[k.Value]
		if !ok {
			where := "in " + ctx
			if ctx == "" {
				where = "at top level"
			}
			d.errs.add(posOf(k), "unknown key %q %s (allowed: %s)", k.Value, where, strings.Join(names, ", "))
			continue
		}
		fctx := fmt.Sprintf("%s of %s", k.Value, ctx)
		if ctx == "" {
			fctx = k.Value
		}
		d.decodeValue(vals[i], v.Field(fi.index), fctx, fi.noun)
	}
}

// Str is a string with the position it was written at.
type Str struct {
	V  string
	At Pos
}

func (s *Str) decodeYAML(d *decoder, n *yaml.Node, ctx string) {
	s.At = posOf(n)
	s.V, _ = d.scalar(n, ctx)
}

// Entry is one key of an ordered map.
type Entry[T any] struct {
	Key   string
	KeyAt Pos
	Val   T
}

// omap is a YAML mapping decoded in file order, with the position of each
// key. The struct tag noun:"role" names its values in messages.
type omap[T any] struct {
	Entries []Entry[T]
	At      Pos
	noun    string
}

func (m *omap[T]) setNoun(s string) { m.noun = s }

func (m *omap[T]) decodeYAML(d *decoder, n *yaml.Node, ctx string) {
	m.At = posOf(n)
	keys, vals, ok := d.mappingPairs(n, ctx)
	if !ok {
		return
	}
	for i, k := range keys {
		e := Entry[T]{Key: k.Value, KeyAt: posOf(k)}
		ectx := fmt.Sprintf("%s %q", m.noun, k.Value)
		if m.noun == "" {
			ectx = fmt.Sprintf("%q in %s", k.Value, ctx)
		}
		d.decodeValue(vals[i], reflect.ValueOf(&e.Val).Elem(), ectx, "")
		m.Entries = append(m.Entries, e)
	}
}

// parseYAML turns data into one document node, reporting syntax errors with
// their position.
func parseYAML(errs *errList, data []byte) *yaml.Node {
	var doc yaml.Node
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&doc); err != nil {
		if err.Error() == "EOF" {
			errs.add(Pos{}, "the file is empty")
			return nil
		}
		errs.add(yamlErrPos(err), "%s", yamlErrMsg(err))
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		errs.add(Pos{Line: extra.Line, Col: extra.Column}, "the file holds more than one YAML document; write one")
		return nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		errs.add(Pos{}, "the file is empty")
		return nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		errs.add(Pos{}, "the file is empty")
		return nil
	}
	return root
}

// yamlErrPos digs "line N" out of a yaml.v3 syntax error; it has no column.
func yamlErrPos(err error) Pos {
	msg := err.Error()
	if i := strings.Index(msg, "line "); i >= 0 {
		rest := msg[i+5:]
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if n, e := strconv.Atoi(rest[:j]); e == nil {
			return Pos{Line: n, Col: 1}
		}
	}
	return Pos{}
}

func yamlErrMsg(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if i := strings.Index(msg, "line "); i == 0 {
		if j := strings.Index(msg, ": "); j > 0 {
			msg = msg[j+2:]
		}
	}
	return "YAML syntax: " + msg
}

func reflectValue(p any) reflect.Value { return reflect.ValueOf(p).Elem() }
