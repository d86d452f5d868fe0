package api

import (
	"net/http"

	"github.com/heraldhq/herald/internal/platform"
)

// handler is a route's handler: it writes its answer, or returns the error
// that serveRoute answers.
type handler = func(http.ResponseWriter, *http.Request) error

// Most routes are one platform call: read the path ids and the JSON body it
// takes, call it as the signed-in user, write its result. These adapters say
// that once; each names the shape of the call it adapts.

// withBody adapts a call that takes a body: POST /api/quests/.
func withBody[In, T any](status int, call func(c ctx, user int64, in In) (T, error)) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in In
		if err := decode(w, r, &in); err != nil {
			return err
		}
		return answer[T](w, status)(call(r.Context(), userID(r), in))
	}
}

// withID adapts a call on one object: GET /api/quests/{id}/.
func withID[T any](call func(c ctx, user, id int64) (T, error)) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r, "id")
		if err != nil {
			return err
		}
		return answer[T](w, http.StatusOK)(call(r.Context(), userID(r), id))
	}
}

// withIDBody adapts a call on one object with a body:
// PATCH /api/quests/{id}/, POST /api/campaigns/{id}/comments/.
func withIDBody[In, T any](status int, call func(c ctx, user, id int64, in In) (T, error)) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r, "id")
		if err != nil {
			return err
		}
		var in In
		if err := decode(w, r, &in); err != nil {
			return err
		}
		return answer[T](w, status)(call(r.Context(), userID(r), id, in))
	}
}

// withIDs adapts a call on one of a campaign's objects:
// GET /api/campaigns/{id}/comments/{oid}/.
func withIDs[T any](call func(c ctx, user, id, oid int64) (T, error)) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, oid, err := pathIDs(r)
		if err != nil {
			return err
		}
		return answer[T](w, http.StatusOK)(call(r.Context(), userID(r), id, oid))
	}
}

// withIDsNoContent adapts an action on one of a campaign's objects that
// answers nothing (204): DELETE /api/campaigns/{id}/comments/{oid}/.
func withIDsNoContent(call func(c ctx, user, id, oid int64) error) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, oid, err := pathIDs(r)
		if err != nil {
			return err
		}
		if err := call(r.Context(), userID(r), id, oid); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// withIDsBody adapts a call on one of a campaign's objects with a body:
// PATCH /api/campaigns/{id}/comments/{oid}/, POST …/{oid}/report/.
func withIDsBody[In, T any](status int, call func(c ctx, user, id, oid int64, in In) (T, error)) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, oid, err := pathIDs(r)
		if err != nil {
			return err
		}
		var in In
		if err := decode(w, r, &in); err != nil {
			return err
		}
		return answer[T](w, status)(call(r.Context(), userID(r), id, oid, in))
	}
}

// withIDList adapts a paginated list below one object:
// GET /api/campaigns/{id}/comments/.
func withIDList[T any](s *Server, list func(c ctx, user, id int64, pr platform.PageRequest) (platform.Page[T], error)) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r, "id")
		if err != nil {
			return err
		}
		return listPage(s, w, r, func(pr platform.PageRequest) (platform.Page[T], error) {
			return list(r.Context(), userID(r), id, pr)
		})
	}
}

// answer writes a call's result with status, or returns its error.
func answer[T any](w http.ResponseWriter, status int) func(T, error) error {
	return func(v T, err error) error {
		if err != nil {
			return err
		}
		writeJSON(w, status, v)
		return nil
	}
}
