package config

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/heraldhq/herald/internal/groups"
)

// Bounds of the files the configuration names, so a wrong path (a log, a
// device) fails at once instead of being read whole.
const (
	maxConfigFile = 1 << 20
	maxKeyFile    = 64 << 10
)

// readFile reads the config file at path: the values it gives flags (flags
// maps each name the file may set to whether that flag takes a
// comma-separated list) and its namespaces, sorted by name. A namespace
// with a bad option is left out and reported; groups.New checks the rest.
func readFile(path string, flags map[string]bool) (map[string]string, []groups.Namespace, []error) {
	data, err := readLimited(path, maxConfigFile)
	if err != nil {
		return nil, nil, []error{fmt.Errorf("--config: %w", err)}
	}
	return parseFile(path, data, flags)
}

// parseFile is readFile of the file's contents, data, read from path.
func parseFile(path string, data []byte, flags map[string]bool) (map[string]string, []groups.Namespace, []error) {
	// Primitive keeps each value for the decoding its key calls for.
	var top map[string]toml.Primitive
	md, err := toml.Decode(string(data), &top)
	if err != nil {
		return nil, nil, []error{fileError(path, err, false)}
	}
	var errs []error
	values := map[string]string{}
	var namespaces map[string]toml.Primitive
	for _, k := range slices.Sorted(maps.Keys(top)) {
		list, ok := flags[k]
		switch {
		case k == "namespaces":
			// The decoder leaves a map as it is when the value is no table.
			// (A table made by [namespaces.NAME] alone has no type.)
			if t := md.Type(k); t != "" && t != "Hash" {
				errs = append(errs, fmt.Errorf("--config %s: namespaces: want [namespaces.NAME] tables, found a TOML %s", path, t))
			} else if err := md.PrimitiveDecode(top[k], &namespaces); err != nil {
				errs = append(errs, fileError(path, err, true))
			}
		case ok:
			v := flagValue{list: list}
			if err := md.PrimitiveDecode(top[k], &v); err != nil {
				errs = append(errs, fileError(path, err, true))
				continue
			}
			values[k] = v.s
		default:
			errs = append(errs, fmt.Errorf("--config %s: unknown key %q (the keys are the flags of herald serve, and namespaces)", path, k))
		}
	}
	// Each table on its own, so one's type error hides no other's.
	tables := map[string]namespaceTable{}
	for _, name := range slices.Sorted(maps.Keys(namespaces)) {
		var t namespaceTable
		if err := md.PrimitiveDecode(namespaces[name], &t); err != nil {
			errs = append(errs, fileError(path, err, true))
			continue
		}
		tables[name] = t
	}
	// Undecoded has the keys of the decoded tables that no option took. The
	// decoder also takes a key that differs from an option only in case,
	// which would let Presence and presence race for one field.
	optionKey := func(k toml.Key) bool {
		if len(k) != 3 || k[0] != "namespaces" {
			return false
		}
		_, decoded := tables[k[1]]
		return decoded
	}
	for _, k := range md.Undecoded() {
		if optionKey(k) {
			errs = append(errs, fmt.Errorf("--config %s: namespace %q: unknown key %q", path, k[1], k[2]))
		}
	}
	for _, k := range md.Keys() {
		if optionKey(k) && !namespaceKeys[k[2]] && foldsToNamespaceKey(k[2]) {
			errs = append(errs, fmt.Errorf("--config %s: namespace %q: unknown key %q (keys are lowercase)", path, k[1], k[2]))
		}
	}
	var converted []groups.Namespace
	for _, name := range slices.Sorted(maps.Keys(tables)) {
		ns, nsErrs := tables[name].namespace(name)
		for _, err := range nsErrs {
			errs = append(errs, fmt.Errorf("--config %s: namespace %q: %w", path, name, err))
		}
		if nsErrs == nil {
			converted = append(converted, ns)
		}
	}
	return values, converted, errs
}

// readLimited reads the file at path, refusing one longer than max bytes.
func readLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: larger than %d KiB", path, max>>10)
	}
	return data, nil
}

// fileError names the config file, and the line and key where the decoder
// gives them, in err. A syntax error's key is only the last one parsed
// before it, so it is left out.
func fileError(path string, err error, withKey bool) error {
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		// The decoder's type mismatches carry their line and key in the text.
		return fmt.Errorf("--config %s: %s", path, strings.TrimPrefix(err.Error(), "toml: "))
	}
	msg := pe.Message
	if withKey && pe.LastKey != "" {
		msg = pe.LastKey + ": " + msg
	}
	if pe.Position.Line > 0 {
		return fmt.Errorf("--config %s:%d: %s", path, pe.Position.Line, msg)
	}
	return fmt.Errorf("--config %s: %s", path, msg)
}

// flagValue is a flag's value in the file: a string, integer or boolean,
// which becomes the text the flag would take; a list flag also takes an
// array of strings, joined with commas.
type flagValue struct {
	list bool
	s    string
}

func (v *flagValue) UnmarshalTOML(data any) error {
	switch d := data.(type) {
	case string:
		v.s = d
	case int64:
		v.s = strconv.FormatInt(d, 10)
	case bool:
		v.s = strconv.FormatBool(d)
	case []any:
		if !v.list {
			return errors.New("want a string, integer or boolean, found an array")
		}
		parts := make([]string, len(d))
		for i, e := range d {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("want an array of strings, found %s in it", tomlType(e))
			}
			parts[i] = s
		}
		v.s = strings.Join(parts, ",")
	default:
		if v.list {
			return fmt.Errorf("want a string or an array of strings, found %s", tomlType(data))
		}
		return fmt.Errorf("want a string, integer or boolean, found %s", tomlType(data))
	}
	return nil
}

// namespaceTable is a [namespaces.NAME] table; namespaceKeys are its keys.
type namespaceTable struct {
	Separator   option[string] `toml:"separator"`
	Subscribe   option[string] `toml:"subscribe"`
	Publish     option[string] `toml:"publish"`
	HistorySize option[int64]  `toml:"history-size"`
	HistoryTTL  option[string] `toml:"history-ttl"`
	Presence    option[bool]   `toml:"presence"`
}

var namespaceKeys = map[string]bool{
	"separator": true, "subscribe": true, "publish": true,
	"history-size": true, "history-ttl": true, "presence": true,
}

func foldsToNamespaceKey(k string) bool {
	for name := range namespaceKeys {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

// namespace converts t, filling in the defaults: separator ":", subscribe
// token, publish none, the groups package's history window, no presence.
func (t namespaceTable) namespace(name string) (groups.Namespace, []error) {
	ns := groups.Namespace{
		Name: name, Sep: ':', Subscribe: groups.TokenHolder, Publish: groups.Nobody,
		HistorySize: groups.DefaultHistorySize, HistoryAge: groups.DefaultHistoryAge, Presence: t.Presence.v,
	}
	var errs []error
	if t.Separator.set {
		if s := t.Separator.v; s == ":" || s == "_" {
			ns.Sep = s[0]
		} else {
			errs = append(errs, fmt.Errorf(`separator %q: want ":" or "_"`, s))
		}
	}
	if t.Subscribe.set {
		if p, err := groups.ParsePolicy(t.Subscribe.v); err != nil || p == groups.Nobody {
			errs = append(errs, fmt.Errorf("subscribe %q: want anonymous, user or token", t.Subscribe.v))
		} else {
			ns.Subscribe = p
		}
	}
	if t.Publish.set {
		if p, err := groups.ParsePolicy(t.Publish.v); err != nil {
			errs = append(errs, fmt.Errorf("publish %q: want none, anonymous, user or token", t.Publish.v))
		} else {
			ns.Publish = p
		}
	}
	// groups.New checks the bounds, but would take 0 for its default.
	if t.HistorySize.set {
		if n := t.HistorySize.v; n < 1 || n > groups.MaxHistorySize {
			errs = append(errs, fmt.Errorf("history-size %d: want 1 to %d", n, groups.MaxHistorySize))
		} else {
			ns.HistorySize = int(n)
		}
	}
	if t.HistoryTTL.set {
		if d, err := time.ParseDuration(t.HistoryTTL.v); err != nil || d < time.Second || d > groups.MaxHistoryAge {
			errs = append(errs, fmt.Errorf("history-ttl %q: want a duration from 1s to %v, like 5m", t.HistoryTTL.v, groups.MaxHistoryAge))
		} else {
			ns.HistoryAge = d
		}
	}
	return ns, errs
}

// option is a namespace option of TOML type T, and whether the file set it.
// As a toml.Unmarshaler its type errors come with the key's line.
type option[T string | int64 | bool] struct {
	v   T
	set bool
}

func (o *option[T]) UnmarshalTOML(data any) error {
	v, ok := data.(T)
	if !ok {
		return fmt.Errorf("want %s, found %s", tomlType(o.v), tomlType(data))
	}
	o.v, o.set = v, true
	return nil
}

// tomlType names the TOML type of a decoded value, for messages.
func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case bool:
		return "a boolean"
	case float64:
		return "a float"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "an array of tables"
	}
	return "a date or time"
}
