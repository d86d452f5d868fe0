package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"strings"

	"github.com/heraldhq/herald/internal/money"
	"github.com/heraldhq/herald/internal/platform"
)

// OpenAPI builds the API's OpenAPI 3.1 document from the route table and the
// Go types the handlers really encode and decode, so it cannot drift from them.
func (s *Server) OpenAPI() map[string]any {
	g := &schemaGen{defs: map[string]any{}}
	paths := map[string]map[string]any{}
	for _, rt := range s.routes {
		op := map[string]any{
			"summary":     rt.Summary,
			"operationId": operationID(rt),
			"tags":        []string{rt.Tag},
		}
		var params []any
		for _, name := range pathParams.FindAllStringSubmatch(rt.Path, -1) {
			params = append(params, map[string]any{"name": name[1], "in": "path", "required": true,
				"schema": map[string]any{"type": "integer", "minimum": 1}})
		}
		for _, q := range rt.Query {
			sch := map[string]any{"type": "string"}
			switch q {
			case "page", "owner", "creator":
				sch = map[string]any{"type": "integer", "minimum": 1}
			case "page_size":
				sch = map[string]any{"type": "integer", "minimum": 1, "maximum": maxPageSize}
			}
			params = append(params, map[string]any{"name": q, "in": "query", "required": false, "schema": sch})
		}
		if rt.Method == http.MethodPost {
			params = append(params, idempotencyParam(rt))
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.Body != nil {
			var sch map[string]any
			if rt.BodySchema != nil {
				sch = rt.BodySchema(g)
			} else {
				sch = g.schema(reflect.TypeOf(rt.Body), true)
			}
			content := map[string]any{"application/json": map[string]any{"schema": sch}}
			if rt.Form != nil {
				content["multipart/form-data"] = s.formContent(g, rt.Form)
			}
			op["requestBody"] = map[string]any{"required": true, "content": content}
		}
		switch rt.Auth {
		case AuthRequired:
			op["security"] = []any{map[string]any{"bearer": []string{}}}
		case AuthAPIKey:
			op["security"] = []any{map[string]any{"apiKey": []string{}}}
		default:
			op["security"] = []any{map[string]any{}, map[string]any{"bearer": []string{}}}
		}
		responses := map[string]any{}
		ok := map[string]any{"description": http.StatusText(rt.Status)}
		if rt.Result != nil {
			sch := g.schema(reflect.TypeOf(rt.Result), false)
			if rt.List {
				sch = map[string]any{"type": "object", "additionalProperties": false,
					"required": []string{"count", "next", "previous", "results"},
					"properties": map[string]any{
						"count":    map[string]any{"type": "integer", "minimum": 0},
						"next":     map[string]any{"type": []string{"string", "null"}},
						"previous": map[string]any{"type": []string{"string", "null"}},
						"results":  map[string]any{"type": "array", "items": sch},
					}}
			}
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": sch}}
		} else if rt.Path == "/api/schema/" {
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}
		}
		errs := append([]int{}, rt.Errors...)
		if rt.Method == http.MethodPost {
			errs = append(errs, http.StatusBadRequest) // a malformed Idempotency-Key
		}
		if recordsKey(rt) {
			ok["headers"] = map[string]any{replayedHeader: map[string]any{
				"description": "true when this is the stored answer to an earlier request with the same " + idempotencyHeader,
				"schema":      map[string]any{"type": "string", "enum": []string{"true"}}}}
			errs = append(errs, http.StatusConflict, http.StatusUnprocessableEntity)
		}
		responses[itoa(rt.Status)] = ok
		if rt.Auth == AuthRequired || !contains(errs, http.StatusUnauthorized) {
			errs = append(errs, http.StatusUnauthorized) // a bad token is refused anywhere
		}
		for _, code := range errs {
			responses[itoa(code)] = map[string]any{"$ref": "#/components/responses/Problem"}
		}
		op["responses"] = responses
		if paths[rt.Path] == nil {
			paths[rt.Path] = map[string]any{}
		}
		paths[rt.Path][strings.ToLower(rt.Method)] = op
	}
	g.schema(reflect.TypeFor[Problem](), false) // adds components/schemas/Problem
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":       "herald REST API",
			"version":     "1",
			"description": "Accounts, campaigns and quests. Every change is also pushed over WebSocket and SSE; see docs/protocol.md.",
		},
		"paths": paths,
		"components": map[string]any{
			"schemas": g.defs,
			"responses": map[string]any{"Problem": map[string]any{
				"description": "An RFC 9457 problem",
				"content": map[string]any{"application/problem+json": map[string]any{
					"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}},
			}},
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
				"apiKey": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "hk_<id>_<secret>",
					"description": "An API key from `herald apikey create`, sent as Authorization: Bearer hk_…; it may publish to the groups its scopes name."},
			},
		},
	}
}

// idempotencyParam documents the Idempotency-Key header of a POST.
func idempotencyParam(rt Route) map[string]any {
	desc := "Makes a retry safe: a request sent again with the same key (same method, path and body) " +
		"within 24 hours is not applied again and gets the first answer, with Idempotent-Replayed: true. " +
		"The same key with another request: 422 idempotency_key_reused; while the first is still answering: " +
		"409 request_in_progress with Retry-After; applied but its answer lost: 409 already_applied. " +
		"Keys are per user."
	if rt.Auth == AuthAPIKey {
		desc = strings.Replace(desc, "Keys are per user.", "Keys are per API key.", 1)
	}
	if !recordsKey(rt) {
		desc = "Accepted (and checked) but not recorded here: the answer holds credentials, which are never stored, " +
			"and sending the request again is harmless."
	}
	return map[string]any{"name": idempotencyHeader, "in": "header", "required": false, "description": desc,
		"schema": map[string]any{"type": "string", "minLength": 1, "maxLength": maxKeyLen, "pattern": "^[!-~]+$"}}
}

var pathParams = regexp.MustCompile(`\{(\w+)\}`)

func operationID(rt Route) string {
	parts := []string{strings.ToLower(rt.Method)}
	for _, seg := range strings.Split(strings.Trim(rt.Path, "/"), "/") {
		if seg == "api" {
			continue
		}
		seg = strings.Trim(seg, "{}")
		parts = append(parts, seg)
	}
	return strings.Join(parts, "_")
}

func contains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

var (
	rawT   = reflect.TypeFor[json.RawMessage]()
	centsT = reflect.TypeFor[money.Cents]()
	timeT  = reflect.TypeFor[platform.Time]()
	dateT  = reflect.TypeFor[platform.Date]()
	imageT = reflect.TypeFor[platform.ImageInput]()
	fileT  = reflect.TypeFor[formFile]()
)

// schemaGen turns Go types into JSON Schema (2020-12, OpenAPI 3.1's dialect).
// Response types are closed (additionalProperties false, every field
// required) so a test can catch a handler writing something undocumented.
type schemaGen struct {
	defs map[string]any
	// named records which type (and which of its two schemas) each name
	// of defs is, so that no two share one.
	named map[string]schemaOf
}

// schemaOf is one schema of a Go type: as a request body's (input) or as
// an answer's.
type schemaOf struct {
	t     reflect.Type
	input bool
}

// name is the name of the schema of struct type t in components/schemas:
// the type's name, and a request body's (whose schema differs: nothing is
// required, amounts may be numbers) ending in Input, once (CampaignInput,
// not CampaignInputInput). Two types cannot take one name: the route table
// is fixed, and its tests build the document.
func (g *schemaGen) name(t reflect.Type, input bool) string {
	name := t.Name()
	if input && !strings.HasSuffix(name, "Input") {
		name += "Input"
	}
	if g.named == nil {
		g.named = map[string]schemaOf{}
	}
	if prev, ok := g.named[name]; ok && prev != (schemaOf{t, input}) {
		panic(fmt.Sprintf("openapi: the schema name %s is both %v's (input %v) and %v's (input %v)", name, prev.t, prev.input, t, input))
	}
	g.named[name] = schemaOf{t, input}
	return name
}

func (g *schemaGen) schema(t reflect.Type, input bool) map[string]any {
	nullable := false
	for t.Kind() == reflect.Pointer {
		t, nullable = t.Elem(), true
	}
	var s map[string]any
	switch t {
	case centsT:
		s = map[string]any{"type": "string", "pattern": `^\d{1,12}\.\d{2}$`, "examples": []string{"100.00"}}
		if input {
			s = map[string]any{"type": []string{"string", "number"}, "description": `a decimal amount with at most 2 places, e.g. "100.00"`}
		}
	case rawT:
		s = map[string]any{"type": "object", "description": "any JSON object, passed on as it is"}
	case timeT:
		s = map[string]any{"type": "string", "format": "date-time"}
	case dateT:
		s = map[string]any{"type": "string", "format": "date"}
	case imageT:
		s = map[string]any{"type": []string{"string", "null"},
			"description": "null or \"\" removes the image; the update's current image keeps it; any other string is refused: upload a new image as multipart/form-data"}
	case fileT:
		s = map[string]any{"type": "string", "contentMediaType": "application/octet-stream"}
	default:
		switch t.Kind() {
		case reflect.String:
			s = map[string]any{"type": "string"}
		case reflect.Bool:
			s = map[string]any{"type": "boolean"}
		case reflect.Int, reflect.Int32, reflect.Int64:
			s = map[string]any{"type": "integer"}
		case reflect.Slice:
			s = map[string]any{"type": "array", "items": g.schema(t.Elem(), input)}
		case reflect.Map:
			s = map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem(), input)}
		case reflect.Struct:
			return g.object(t, input, nullable)
		default:
			s = map[string]any{}
		}
	}
	if nullable && !input {
		if typ, ok := s["type"].(string); ok {
			s["type"] = []string{typ, "null"}
		}
	}
	return s
}

func (g *schemaGen) object(t reflect.Type, input, nullable bool) map[string]any {
	name := g.name(t, input)
	ref := map[string]any{"$ref": "#/components/schemas/" + name}
	if nullable && !input {
		ref = map[string]any{"oneOf": []any{ref, map[string]any{"type": "null"}}}
	}
	if _, done := g.defs[name]; done {
		return ref
	}
	g.defs[name] = nil // placeholder against recursion
	props := map[string]any{}
	var required []string
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if f.Anonymous {
				walk(f.Type)
				continue
			}
			tag := f.Tag.Get("json")
			jname, opts, _ := strings.Cut(tag, ",")
			if jname == "-" || !f.IsExported() {
				continue
			}
			if jname == "" {
				jname = f.Name
			}
			props[jname] = g.schema(f.Type, input)
			if !input && !strings.Contains(opts, "omitempty") {
				required = append(required, jname)
			}
		}
	}
	walk(t)
	obj := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		obj["required"] = required
	}
	g.defs[name] = obj
	return ref
}

// schema serves the OpenAPI document, built once.
func (s *Server) schema(w http.ResponseWriter, r *http.Request) error {
	s.schemaOnce.Do(func() { s.schemaJSON, _ = json.Marshal(s.OpenAPI()) })
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(s.schemaJSON)
	return nil
}

// formContent documents a multipart/form-data body of type form: its
// fields, the image's accepted types and size.
func (s *Server) formContent(g *schemaGen, form any) map[string]any {
	sch := g.schema(reflect.TypeOf(form), true)
	def := g.defs[g.name(reflect.TypeOf(form), true)].(map[string]any)
	img := def["properties"].(map[string]any)["image"].(map[string]any)
	img["description"] = fmt.Sprintf("a PNG, JPEG, GIF or WebP file (the type is read from its content, the file name is not used) "+
		"of at most %d bytes, %d pixels a side and %d megapixels; or, as a text field, \"\" to remove the image. "+
		"Without it an edit keeps the current image.", s.maxImageBytes, s.images.Limits().MaxSide, s.images.Limits().MaxPixels/1_000_000)
	return map[string]any{"schema": sch, "encoding": map[string]any{
		"image": map[string]any{"contentType": "image/png, image/jpeg, image/gif, image/webp"}}}
}

// publishSchema documents POST /api/publish/'s two bodies: one event, or a
// batch of them.
func publishSchema(g *schemaGen) map[string]any {
	one := g.schema(reflect.TypeFor[PublishEvent](), true)
	batch := g.schema(reflect.TypeFor[PublishBatch](), true)
	ev := g.defs[g.name(reflect.TypeFor[PublishEvent](), true)].(map[string]any)
	ev["required"] = []string{"group", "type", "data"}
	props := ev["properties"].(map[string]any)
	props["group"] = map[string]any{"type": "string", "description": "campaign_N, quest_N or user_N", "examples": []string{"campaign_5"}}
	props["type"] = map[string]any{"type": "string", "pattern": "^[a-z0-9_.-]{1,64}$", "examples": []string{"score_update"},
		"description": "not one of herald's own message types (room_reset, quest_created, campaign_data, error, subscribed, ack, presence), nor campaign in a campaign's room"}
	props["data"].(map[string]any)["description"] = "a JSON object, 64 KiB at most by default (--publish-max-data); clients receive it as it is"
	b := g.defs[g.name(reflect.TypeFor[PublishBatch](), true)].(map[string]any)
	b["required"] = []string{"events"}
	evs := b["properties"].(map[string]any)["events"].(map[string]any)
	evs["minItems"], evs["maxItems"] = 1, MaxPublishBatch
	return map[string]any{"oneOf": []any{one, batch}}
}
