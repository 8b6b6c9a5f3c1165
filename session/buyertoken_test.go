package session

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestVerifyBuyerToken(t *testing.T) {
	now := time.Now()
	secret, old, visitor := []byte("s-new"), []byte("s-old"), []byte("server-visitor-key")
	sign := func(key []byte, c BuyerClaims) string {
		tok, err := SignBuyerToken(key, c, now)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "x", "exp": now.Add(time.Hour).Unix()})
	noneTok, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	noExp := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "x"})
	noExpTok, _ := noExp.SignedString(secret)
	visitorTok, _, _ := NewVisitorToken(visitor, 7, now)
	otherShopVisitor, _, _ := NewVisitorToken(visitor, 8, now)
	cases := []struct {
		name string
		tok  string
		ok   bool
		sub  string
	}{
		{"current secret", sign(secret, BuyerClaims{Subject: "u1", Tier: "vip", Tags: []string{"refund"}}), true, "u1"},
		{"previous secret during rotation", sign(old, BuyerClaims{Subject: "u2"}), true, "u2"},
		{"unknown secret", sign([]byte("nope"), BuyerClaims{Subject: "u3"}), false, ""},
		{"expired", sign(secret, BuyerClaims{Subject: "u4", Expires: now.Add(-time.Minute)}), false, ""},
		{"exp too far ahead", sign(secret, BuyerClaims{Subject: "u5", Expires: now.Add(25 * time.Hour)}), false, ""},
		{"no exp", noExpTok, false, ""},
		{"alg none", noneTok, false, ""},
		{"empty sub", sign(secret, BuyerClaims{}), false, ""},
		{"shop token claiming to be anonymous", sign(secret, BuyerClaims{Subject: "u6", Anonymous: true}), false, ""},
		{"visitor token of this shop", visitorTok, true, ""},
		{"visitor token of another shop", otherShopVisitor, false, ""},
		{"garbage", "not.a.token", false, ""},
		{"empty", "", false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := VerifyBuyerToken(tc.tok, 7, []string{string(secret), string(old)}, visitor, now)
			if tc.ok != (err == nil) {
				t.Fatalf("ok=%v err=%v", tc.ok, err)
			}
			if err != nil && ErrorCode(err) != EFORBIDDEN {
				t.Fatalf("code %s", ErrorCode(err))
			}
			if tc.sub != "" && c.Subject != tc.sub {
				t.Fatalf("sub %q", c.Subject)
			}
		})
	}
}

func TestEntryContextKind(t *testing.T) {
	for _, tc := range []struct {
		c    EntryContext
		want Kind
	}{
		{EntryContext{ProductID: "p"}, KindPreSale},
		{EntryContext{OrderID: "o"}, KindAfterSale},
		{EntryContext{ProductID: "p", OrderID: "o"}, KindAfterSale},
		{EntryContext{Page: "/help"}, KindUnknown},
	} {
		if got := tc.c.Kind(); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.c, got, tc.want)
		}
	}
}

func TestCheckBody(t *testing.T) {
	s := &Service{Config: DefaultConfig()}
	for _, tc := range []struct {
		name string
		b    Body
		code string
	}{
		{"text", Body{Type: TypeText, Text: "你好 👋"}, ""},
		{"text drops stray fields", Body{Type: TypeText, Text: "x", BlobKey: "k", RecallSeq: 3}, ""},
		{"empty text", Body{Type: TypeText}, EINVALID},
		{"long text", Body{Type: TypeText, Text: string(make([]byte, 4097))}, ETOOLARGE},
		{"invalid utf-8", Body{Type: TypeText, Text: "\xff\xfe"}, EINVALID},
		{"image", Body{Type: TypeImage, BlobKey: "uploads/1/a.png"}, ""},
		{"image without blob", Body{Type: TypeImage}, EINVALID},
		{"product card", Body{Type: TypeProduct, Card: &Card{ID: "sku1", Title: "Tea"}}, ""},
		{"order card without id", Body{Type: TypeOrder, Card: &Card{}}, EINVALID},
		{"recall", Body{Type: TypeRecall, RecallSeq: 3}, ""},
		{"recall without seq", Body{Type: TypeRecall}, EINVALID},
		{"system from a client", Body{Type: TypeSystem, Text: "x"}, EFORBIDDEN},
		{"no type", Body{}, EINVALID},
		{"unknown type", Body{Type: "video"}, EINVALID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.b
			err := s.checkBody(&b)
			if tc.code == "" && err != nil || tc.code != "" && ErrorCode(err) != tc.code {
				t.Fatalf("got %v, want %q", err, tc.code)
			}
			if tc.name == "text drops stray fields" && (b.BlobKey != "" || b.RecallSeq != 0) {
				t.Fatalf("stray fields kept: %+v", b)
			}
		})
	}
}
