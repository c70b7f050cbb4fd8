package rewrite

import (
	"bytes"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pgcloak/pgcloak/audit"
)

// What is sent is what was analysed. pgcloak decides on a parse tree and
// sends text printed from it by pg_query's deparser; a printer that copies
// a name without quoting it (a type name, a window name, a named argument,
// an alias) turns a quoted identifier holding SQL into SQL. So the text is
// parsed again, and its tree must equal the tree pgcloak meant to send,
// positions aside. Any difference, whatever printer path caused it, is a
// refusal. The policy subqueries, printed and checked once when cached,
// are put into the checked text at positions the parser reports
// (splice.go).

// verifySent is switched off only by tests that show the check carries
// weight.
var verifySent = true

// verifyRefusal is the refusal of a rewrite whose text does not say what
// its tree says.
var verifyRefusal = &Refusal{Code: "42501", Rule: audit.Rule(audit.ReasonVerify),
	Message: "pgcloak: the rewritten statement does not parse back to what pgcloak checked, so it is not sent (rule: verify)"}

// parsedAsMeant parses sql again and reports whether it gives tree,
// positions aside; again is the new tree.
func parsedAsMeant(tree *pg_query.ParseResult, sql string) (again *pg_query.ParseResult, ok bool) {
	again, err := pg_query.Parse(sql)
	if err != nil {
		return nil, false
	}
	if !verifySent {
		return again, true
	}
	return again, sameTree(tree.ProtoReflect(), again.ProtoReflect())
}

// positionField says whether a field holds a position in the text, which
// printing and parsing again changes.
func positionField(fd protoreflect.FieldDescriptor) bool {
	n := string(fd.Name())
	return n == "location" || n == "stmt_len" || strings.HasSuffix(n, "_location")
}

// sameTree compares two messages field by field, positions aside. An unset
// message field equals an empty one, except in a oneof (a Node), where
// which member is set is part of the tree.
func sameTree(a, b protoreflect.Message) bool {
	if a.Descriptor() != b.Descriptor() {
		return false
	}
	same := true
	a.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if positionField(fd) {
			return true
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() && !b.Has(fd) {
			same = false
			return false
		}
		same = sameValue(fd, v, b.Get(fd))
		return same
	})
	if !same {
		return false
	}
	// Fields set in b only (those set in both were compared above).
	b.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if positionField(fd) || a.Has(fd) {
			return true
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			same = false
			return false
		}
		same = sameValue(fd, a.Get(fd), v)
		return same
	})
	return same
}

// sameValue compares x, from the tree pgcloak built, with y, from the text
// parsed again.
func sameValue(fd protoreflect.FieldDescriptor, x, y protoreflect.Value) bool {
	if fd.IsList() {
		lx, ly := x.List(), y.List()
		if lx.Len() != ly.Len() {
			return false
		}
		for i := 0; i < lx.Len(); i++ {
			if !sameScalarOrMessage(fd, lx.Get(i), ly.Get(i)) {
				return false
			}
		}
		return true
	}
	if fd.IsMap() {
		return false // pg_query's tree has no maps; refuse what is not understood
	}
	return sameScalarOrMessage(fd, x, y)
}

func sameScalarOrMessage(fd protoreflect.FieldDescriptor, x, y protoreflect.Value) bool {
	switch fd.Kind() {
	case protoreflect.EnumKind:
		// pg_query's enums start with an UNDEFINED member, which a node
		// that pgcloak builds without naming a value keeps, and which the
		// deparser prints as the default; the parser then names that
		// default. Only x, the tree pgcloak built, can hold it.
		return x.Enum() == 0 || x.Enum() == y.Enum()
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return sameTree(x.Message(), y.Message())
	case protoreflect.BytesKind:
		return bytes.Equal(x.Bytes(), y.Bytes())
	default:
		return x.Interface() == y.Interface()
	}
}
