package rules

import (
	"reflect"
	"strings"
)

// Field is one name an expression can use, for editors that complete and document them.
type Field struct {
	// Path is how an expression names it, e.g. "session.product.category".
	Path string `json:"path"`
	// Type is its type as expr sees it: string, int, float, bool, []string or object.
	Type string `json:"type"`
}

// Environment lists the fields of the expression environments: When and Weight see the session
// fields; Target and Score see the session and the agent fields.
type Environment struct {
	Session     []Field      `json:"session"`
	Agent       []Field      `json:"agent"`
	Preferences []Preference `json:"preferences"`
	Builtins    []string     `json:"builtins"`
}

// Fields returns the expression environments, derived from the same types the compiler checks
// against, so an editor never offers a name the compiler would reject.
func Fields() Environment {
	return Environment{
		Session:     fieldsOf("session", reflect.TypeOf(Session{})),
		Agent:       fieldsOf("agent", reflect.TypeOf(Agent{})),
		Preferences: KnownPreferences(),
		Builtins:    AllowedBuiltins(),
	}
}

func fieldsOf(prefix string, t reflect.Type) []Field {
	var out []Field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("expr"), ",")
		if name == "" || name == "-" {
			continue
		}
		path := prefix + "." + name
		if f.Type.Kind() == reflect.Struct {
			out = append(out, Field{Path: path, Type: "object"})
			out = append(out, fieldsOf(path, f.Type)...)
			continue
		}
		out = append(out, Field{Path: path, Type: typeName(f.Type)})
	}
	return out
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "int"
	case reflect.Float32, reflect.Float64:
		return "float"
	case reflect.Slice:
		return "[]" + typeName(t.Elem())
	}
	return t.Kind().String()
}
