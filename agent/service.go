package agent

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"regexp"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Service is what the edge calls for shops, staff and buyers: it validates and enforces roles.
type Service struct {
	Store *Store
	// Cost is the bcrypt cost of new password hashes.
	Cost int
}

// NewService returns a service over store with the default bcrypt cost.
func NewService(store *Store) *Service { return &Service{Store: store, Cost: bcrypt.DefaultCost} }

var slugRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,62}$`)
var usernameRE = regexp.MustCompile(`^[A-Za-z0-9_.@-]{2,64}$`)

// NewShop is what the operator gives to create a shop and its first manager.
type NewShop struct {
	Slug            string   `json:"slug"`
	Name            string   `json:"name"`
	TimeZone        string   `json:"time_zone"`
	AllowedOrigins  []string `json:"allowed_origins"`
	ManagerUsername string   `json:"manager_username"`
	ManagerPassword string   `json:"manager_password"`
}

// CreateShop creates a shop, a buyer-token secret and its first manager.
func (s *Service) CreateShop(ctx context.Context, in NewShop) (*Shop, *Staff, error) {
	if !slugRE.MatchString(in.Slug) {
		return nil, nil, Errorf(EINVALID, "slug must be 2-63 lower-case letters, digits or dashes")
	}
	if strings.TrimSpace(in.Name) == "" {
		in.Name = in.Slug
	}
	if in.TimeZone == "" {
		in.TimeZone = "UTC"
	}
	if _, err := time.LoadLocation(in.TimeZone); err != nil {
		return nil, nil, Errorf(EINVALID, "unknown time zone %q", in.TimeZone)
	}
	if err := checkPassword(in.ManagerPassword); err != nil {
		return nil, nil, err
	}
	if !usernameRE.MatchString(in.ManagerUsername) {
		return nil, nil, Errorf(EINVALID, "manager_username must be 2-64 letters, digits or _.@-")
	}
	origins, err := cleanOrigins(in.AllowedOrigins)
	if err != nil {
		return nil, nil, err
	}
	shop := &Shop{Slug: in.Slug, Name: in.Name, TimeZone: in.TimeZone, AllowedOrigins: origins,
		BuyerSecrets: []string{NewSecret()}}
	if err := s.Store.CreateShop(ctx, shop); err != nil {
		return nil, nil, err
	}
	mgr, err := s.CreateStaff(ctx, shop.ID, NewStaff{Username: in.ManagerUsername, Password: in.ManagerPassword,
		Role: RoleManager, Capacity: 5})
	if err != nil {
		return nil, nil, err
	}
	return shop, mgr, nil
}

// NewSecret returns a random 256-bit secret, URL-safe base64.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func cleanOrigins(in []string) ([]string, error) {
	out := []string{}
	for _, o := range in {
		o = strings.TrimRight(strings.TrimSpace(o), "/")
		if o == "" {
			continue
		}
		if o != "*" && !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") {
			return nil, Errorf(EINVALID, "origin %q must start with http:// or https://", o)
		}
		out = append(out, o)
	}
	return out, nil
}

func checkPassword(p string) error {
	if len(p) < 4 || len(p) > 72 {
		return Errorf(EINVALID, "password must be 4-72 bytes")
	}
	return nil
}

// NewStaff is what a manager gives to create an agent or another manager.
type NewStaff struct {
	Username    string   `json:"username"`
	Password    string   `json:"password"`
	DisplayName string   `json:"display_name"`
	Role        Role     `json:"role"`
	Groups      []string `json:"groups"`
	Skills      []string `json:"skills"`
	Capacity    int      `json:"capacity"`
}

// CreateStaff creates a staff member of shop, offline until they connect.
func (s *Service) CreateStaff(ctx context.Context, shopID int64, in NewStaff) (*Staff, error) {
	if !usernameRE.MatchString(in.Username) {
		return nil, Errorf(EINVALID, "username must be 2-64 letters, digits or _.@-")
	}
	if err := checkPassword(in.Password); err != nil {
		return nil, err
	}
	if in.Role == "" {
		in.Role = RoleAgent
	}
	if in.Role != RoleAgent && in.Role != RoleManager {
		return nil, Errorf(EINVALID, "role must be agent or manager")
	}
	if in.Capacity == 0 {
		in.Capacity = 5
	}
	if in.Capacity < 0 || in.Capacity > 1000 {
		return nil, Errorf(EINVALID, "capacity must be 0-1000")
	}
	if in.DisplayName == "" {
		in.DisplayName = in.Username
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(in.Password), s.Cost)
	if err != nil {
		return nil, err
	}
	st := &Staff{ShopID: shopID, Username: in.Username, DisplayName: in.DisplayName, PasswordHash: string(hash),
		Role: in.Role, Groups: cleanList(in.Groups), Skills: cleanList(in.Skills), Capacity: in.Capacity,
		Status: StatusOffline, Active: true}
	if err := s.Store.CreateStaff(ctx, st); err != nil {
		return nil, err
	}
	return st, nil
}

func cleanList(in []string) []string {
	out := []string{}
	seen := map[string]bool{}
	for _, v := range in {
		v = strings.TrimSpace(v)
		if v != "" && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// StaffUpdate changes some fields of a staff member; nil fields stay as they are.
type StaffUpdate struct {
	DisplayName *string   `json:"display_name"`
	Groups      *[]string `json:"groups"`
	Skills      *[]string `json:"skills"`
	Capacity    *int      `json:"capacity"`
	Password    *string   `json:"password"`
	Active      *bool     `json:"active"`
	Role        *Role     `json:"role"`
}

// UpdateStaff applies u to staff member id of shop.
func (s *Service) UpdateStaff(ctx context.Context, shopID, id int64, u StaffUpdate) (*Staff, error) {
	st, err := s.Store.Staff(ctx, shopID, id)
	if err != nil {
		return nil, err
	}
	if u.DisplayName != nil {
		st.DisplayName = strings.TrimSpace(*u.DisplayName)
	}
	if u.Groups != nil {
		st.Groups = cleanList(*u.Groups)
	}
	if u.Skills != nil {
		st.Skills = cleanList(*u.Skills)
	}
	if u.Capacity != nil {
		if *u.Capacity < 0 || *u.Capacity > 1000 {
			return nil, Errorf(EINVALID, "capacity must be 0-1000")
		}
		st.Capacity = *u.Capacity
	}
	if u.Role != nil {
		if *u.Role != RoleAgent && *u.Role != RoleManager {
			return nil, Errorf(EINVALID, "role must be agent or manager")
		}
		st.Role = *u.Role
	}
	if u.Password != nil {
		if err := checkPassword(*u.Password); err != nil {
			return nil, err
		}
		hash, err := bcrypt.GenerateFromPassword([]byte(*u.Password), s.Cost)
		if err != nil {
			return nil, err
		}
		st.PasswordHash = string(hash)
	}
	if u.Active != nil {
		st.Active = *u.Active
		if !st.Active {
			st.Status = StatusOffline
		}
	}
	if err := s.Store.SaveStaff(ctx, st); err != nil {
		return nil, err
	}
	return st, nil
}

// Login checks a staff member's password and returns them. The error never says which part was wrong.
func (s *Service) Login(ctx context.Context, shopSlug, username, password string) (*Shop, *Staff, error) {
	bad := Errorf(EFORBIDDEN, "wrong shop, username or password")
	shop, err := s.Store.ShopBySlug(ctx, shopSlug)
	if ErrorCode(err) == ENOTFOUND {
		return nil, nil, bad
	}
	if err != nil {
		return nil, nil, err
	}
	st, err := s.Store.StaffByUsername(ctx, shop.ID, username)
	if ErrorCode(err) == ENOTFOUND {
		return nil, nil, bad
	}
	if err != nil {
		return nil, nil, err
	}
	if !st.Active || bcrypt.CompareHashAndPassword([]byte(st.PasswordHash), []byte(password)) != nil {
		return nil, nil, bad
	}
	return shop, st, nil
}

// SetStatus changes a staff member's status and returns the previous one.
func (s *Service) SetStatus(ctx context.Context, shopID, id int64, status Status) (Status, error) {
	if !status.Valid() {
		return "", Errorf(EINVALID, "status must be online, busy, away or offline")
	}
	return s.Store.SetStatus(ctx, shopID, id, status)
}

// UpdateStatus is SetStatus for a caller that does not need the previous status: a statement fewer.
func (s *Service) UpdateStatus(ctx context.Context, shopID, id int64, status Status) error {
	if !status.Valid() {
		return Errorf(EINVALID, "status must be online, busy, away or offline")
	}
	return s.Store.UpdateStatus(ctx, shopID, id, status)
}

// ShopUpdate changes some settings of a shop; nil fields stay as they are.
type ShopUpdate struct {
	Name           *string   `json:"name"`
	TimeZone       *string   `json:"time_zone"`
	AllowedOrigins *[]string `json:"allowed_origins"`
	Settings       *Settings `json:"settings"`
	// RotateSecret adds a new buyer-token secret and keeps only the newest previous one.
	RotateSecret bool `json:"rotate_secret"`
}

// UpdateShop applies u to the shop and returns it.
func (s *Service) UpdateShop(ctx context.Context, shopID int64, u ShopUpdate) (*Shop, error) {
	shop, err := s.Store.Shop(ctx, shopID)
	if err != nil {
		return nil, err
	}
	if u.Name != nil && strings.TrimSpace(*u.Name) != "" {
		shop.Name = strings.TrimSpace(*u.Name)
	}
	if u.TimeZone != nil {
		if _, err := time.LoadLocation(*u.TimeZone); err != nil {
			return nil, Errorf(EINVALID, "unknown time zone %q", *u.TimeZone)
		}
		shop.TimeZone = *u.TimeZone
	}
	if u.AllowedOrigins != nil {
		origins, err := cleanOrigins(*u.AllowedOrigins)
		if err != nil {
			return nil, err
		}
		shop.AllowedOrigins = origins
	}
	if u.Settings != nil {
		if u.Settings.IdleTimeoutSeconds < 0 || u.Settings.RetentionDays < 0 {
			return nil, Errorf(EINVALID, "settings must not be negative")
		}
		shop.Settings = *u.Settings
	}
	if u.RotateSecret {
		shop.BuyerSecrets = append([]string{NewSecret()}, shop.BuyerSecrets...)
		if len(shop.BuyerSecrets) > 2 {
			shop.BuyerSecrets = shop.BuyerSecrets[:2]
		}
	}
	if err := s.Store.SaveShop(ctx, shop); err != nil {
		return nil, err
	}
	return shop, nil
}
