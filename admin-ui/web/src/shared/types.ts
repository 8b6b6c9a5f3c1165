// Objects of docs/protocol.md ("Objects" and "Message bodies").
export interface Party { kind: 'buyer' | 'staff' | 'system'; id: number }
export interface EntryContext { page?: string; product_id?: string; product_name?: string; category?: string; order_id?: string; order_status?: string; language?: string }
export interface Card { id: string; title?: string; price?: string; image?: string; status?: string; url?: string }
export interface Body {
  type: 'text' | 'image' | 'file' | 'product' | 'order' | 'recall' | 'system'
  text?: string; blob_key?: string; name?: string; mime?: string; size?: number
  card?: Card; recall_seq?: number; event?: string
}
export interface Message {
  conversation_id: number; seq: number; client_msg_id: string; shop_id?: number
  sender_kind: 'buyer' | 'staff' | 'system'; sender_id: number; body: Body; server_time: string; recalled?: boolean
}
export interface Session {
  id: number; conversation_id: number; shop_id: number; buyer_id: number; kind: string; context?: EntryContext
  state: 'queued' | 'open' | 'closed'; agent_id: number; assigned_by?: string; first_seq: number
  opened_at: string; assigned_at?: string; first_response_at?: string; last_activity_at?: string
  closed_at?: string; closed_by?: string; outcome?: string
  rating?: number; rating_comment?: string; rated_at?: string
}
export interface UnreadCount { conversation_id: number; count: number; total: number; read_seq: number }
export interface Conversation {
  id: number; shop_id: number; buyer_id: number; last_seq: number; context?: EntryContext
  created_at: string; updated_at: string; unread?: number; session?: Session
}
export interface Staff {
  id: number; shop_id: number; username: string; display_name: string; role: 'agent' | 'manager'
  groups: string[]; skills: string[]; capacity: number; status: string; active: boolean
}
export interface Shop { id: number; slug: string; name: string; time_zone: string; allowed_origins: string[]; settings?: { quick_replies?: string[]; business_hours?: string } }
