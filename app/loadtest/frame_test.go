package loadtest

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// frameSamples are frames as the server writes them, and near misses.
var frameSamples = []string{
	`{"type":"ack","ref":"3.17.123456789","client_msg_id":"3.17.123456789","conversation_id":42,"seq":7,"server_time":"2026-11-22T09:18:01.123456789Z"}`,
	`{"type":"ack","ref":"3.17.1","client_msg_id":"3.17.1","conversation_id":42,"seq":7,"server_time":"2026-11-22T09:18:01Z","dup":true}`,
	`{"type":"message","conversation_id":42,"message":{"conversation_id":42,"seq":9,"client_msg_id":"5.2.99","shop_id":1,"sender_kind":"staff","sender_id":3,"body":{"type":"text","text":"bench message"},"server_time":"2026-11-22T09:18:01.5Z"},"seq":9,"unread":{"conversation_id":42,"count":1,"total":3,"read_seq":0}}`,
	`{"type":"message","conversation_id":42,"message":{"seq":9,"client_msg_id":"5.2.99","sender_kind":"buyer","body":{"type":"product","card":{"id":"p1","title":"a \"quoted\" \u00e9 title","price":"1.5e3"}},"recalled":true,"n":[1,-2.5e-3,[],{},null,false]},"seq":9}`,
	` { "type" : "message" , "message" : { "client_msg_id" : "x" } , "seq" : 0 } `,
	`{"TYPE":"ack","Seq":5,"Conversation_ID":3,"DUP":false}`,
	`{"type":"ack","seq":5,"seq":6}`,
	`{"type":"message","message":{"client_msg_id":"a"},"message":{"sender_kind":"b"}}`,
	`{"type":"ack","ref":"caf\u00e9"}`,
	`{"type":"ack","ref":"café"}`,
	`{"type":"ack","seq":1.0}`,
	`{"type":"ack","seq":1e3}`,
	`{"type":"ack","seq":01}`,
	`{"type":"ack","seq":-0}`,
	`{"type":"ack","seq":9223372036854775807}`,
	`{"type":"ack","seq":99999999999999999999}`,
	`{"type":"ack","seq":"7"}`,
	`{"type":"ack","seq":null}`,
	`{"type":"ack","message":null}`,
	`{"type":"ack","message":"text"}`,
	`{"type":"ack","dup":1}`,
	`{"type":"error","ref":"r","error":{"code":"ERATE","message":"slow down"}}`,
	`{"type":"hello","node":"n1","party":{"kind":"buyer","id":1}}`,
	`{"type":"ack"} x`,
	`{"type":"ack",}`,
	`{"type":"ack"`,
	`{"type":"ack","x":tru}`,
	`{"type":"ack","x":[1,]}`,
	`{"type":"ack","x":"a` + "\x01" + `"}`,
	`{"type":"ack","x":"\q"}`,
	`{"type":"ack","x":"\u12"}`,
	`{"type":"ack","ref":"\xff"}`,
	`{"type":"ack","\u0073eq":4}`,
	`{"type":"ack","ſeq":4}`,
	`[{"type":"ack"}]`,
	`null`,
	``,
}

// checkFrame fails when parseFrame accepts data and json.Unmarshal disagrees.
func checkFrame(t *testing.T, data []byte) {
	t.Helper()
	var fast, slow frame
	if !parseFrame(data, &fast) {
		return
	}
	if err := json.Unmarshal(data, &slow); err != nil {
		t.Fatalf("parseFrame accepted %q, which json.Unmarshal refuses: %v", data, err)
	}
	if fast != slow {
		t.Fatalf("parseFrame(%q) = %+v, json.Unmarshal %+v", data, fast, slow)
	}
}

func TestParseFrameAgreesWithJSON(t *testing.T) {
	accepted := 0
	for _, s := range frameSamples {
		checkFrame(t, []byte(s))
		var f frame
		if parseFrame([]byte(s), &f) {
			accepted++
		}
	}
	if accepted < 8 {
		t.Fatalf("the fast path took only %d of the samples", accepted)
	}
	// Mutations of the samples: bytes changed, dropped and repeated.
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte(`{}[]":,.-+eE0123456789 \"uatrfnlsqATS` + "\x00\x1f\x7f\xc3\xa9\xff")
	for range 200000 {
		b := []byte(frameSamples[r.IntN(len(frameSamples))])
		for range 1 + r.IntN(3) {
			if len(b) == 0 {
				break
			}
			i := r.IntN(len(b))
			switch r.IntN(3) {
			case 0:
				b[i] = alphabet[r.IntN(len(alphabet))]
			case 1:
				b = append(b[:i:i], b[i+1:]...)
			default:
				b = append(b[:i+1:i+1], b[i:]...)
			}
		}
		checkFrame(t, b)
	}
}

func BenchmarkParseFrame(b *testing.B) {
	data := []byte(frameSamples[2])
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var f frame
			if !parseFrame(data, &f) {
				b.Fatal("declined")
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var f frame
			if err := json.Unmarshal(data, &f); err != nil {
				b.Fatal(err)
			}
		}
	})
}
