package search

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/shopdesk/shopdesk/session"
)

func TestExtractCodes(t *testing.T) {
	for _, c := range []struct {
		text string
		want []string
	}{
		{"订单号E20261122000123已发货", []string{"e20261122000123"}},
		{"call 138-1234-5678 please", []string{"138-1234-5678", "13812345678"}},
		{"SKU-A1234-RED 有货吗", []string{"sku-a1234-red", "skua1234red"}},
		{"XL 2 件, 12 元, ab12c", nil},
		{"order 12345 and 12345 again", []string{"12345"}},
	} {
		if got := ExtractCodes(c.text); !slices.Equal(got, c.want) {
			t.Errorf("%q: %q, want %q", c.text, got, c.want)
		}
	}
}

func TestParseKeyword(t *testing.T) {
	for _, c := range []struct {
		in             string
		words, phrases []string
	}{
		{"", nil, nil},
		{"  退款  refund ", []string{"退款", "refund"}, nil},
		{`"refund status" 退款`, []string{"退款"}, []string{"refund status"}},
		{`a "b c" d "e`, []string{"a", "d"}, []string{"b c", "e"}},
		{`"" x`, []string{"x"}, nil},
	} {
		k := parseKeyword(c.in)
		if !slices.Equal(k.words, c.words) || !slices.Equal(k.phrases, c.phrases) {
			t.Errorf("%q: words %q phrases %q", c.in, k.words, k.phrases)
		}
	}
}

func TestCodeQuery(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"E2026", "e2026", true},
		{"5678", "5678", true},
		{"12", "", false},
		{"refund", "", false},
		{"订单123", "", false},
		{"138-1234", "138-1234", true},
	} {
		got, ok := codeQuery(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("%q: %q %v", c.in, got, ok)
		}
	}
}

func TestFromMessage(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	conv := session.Conversation{ID: 5, ShopID: 1, BuyerID: 11, Context: session.EntryContext{OrderID: "E1"}}
	m := session.Message{ConversationID: 5, Seq: 3, ShopID: 1, SenderKind: session.PartyBuyer, SenderID: 11, CreatedAt: at,
		Body: session.Body{Type: session.TypeOrder, Text: "查一下", Card: &session.Card{ID: "E20260102000001", Title: "连衣裙 XL"}}, Recalled: true}
	d := FromMessage(m, conv, nil)
	want := Document{ShopID: 1, ConversationID: 5, Seq: 3, Kind: session.KindAfterSale, BuyerID: 11, SenderKind: session.PartyBuyer,
		SenderID: 11, Type: session.TypeOrder, Text: "查一下\n连衣裙 XL\nE20260102000001", Codes: []string{"e20260102000001"}, Recalled: true, CreatedAt: at}
	if d.ID() != "1-5-3" || !slices.Equal(d.Codes, want.Codes) {
		t.Fatalf("%+v", d)
	}
	d.Codes, want.Codes = nil, nil
	if !reflect.DeepEqual(d, want) {
		t.Errorf("got  %+v\nwant %+v", d, want)
	}
	d = FromMessage(m, conv, &session.Session{ID: 9, Kind: session.KindPreSale, AgentID: 7})
	if d.SessionID != 9 || d.Kind != session.KindPreSale || d.AgentID != 7 {
		t.Errorf("session not taken: %+v", d)
	}
}
