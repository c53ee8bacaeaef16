package simulator

import (
	"encoding/json"
	"net/http"
)

// envelope is Cloudflare's response wrapper.
type envelope struct {
	Success  bool      `json:"success"`
	Errors   []message `json:"errors"`
	Messages []message `json:"messages"`
	Result   any       `json:"result"`
}

// message is an entry of errors or messages.
type message struct {
	Code       int       `json:"code"`
	Message    string    `json:"message"`
	ErrorChain []message `json:"error_chain,omitempty"`
}

// failure is an error answer.
type failure struct {
	status  int
	errors  []message
	headers map[string]string
}

func fail(status int, errs ...message) *failure {
	return &failure{status: status, errors: errs}
}

// success wraps a result.
func success(result any) envelope {
	return envelope{Success: true, Errors: []message{}, Messages: []message{}, Result: result}
}

// writeFailure answers f with success=false and result=null, the schema's
// shape for 4XX.
func writeFailure(w http.ResponseWriter, f *failure) {
	for k, v := range f.headers {
		w.Header().Set(k, v)
	}
	writeJSON(w, f.status, envelope{Success: false, Errors: f.errors, Messages: []message{}, Result: nil})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil { // only our own types: a bug
		http.Error(w, "simulator: encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// statusWriter records the status written, for Stats.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
