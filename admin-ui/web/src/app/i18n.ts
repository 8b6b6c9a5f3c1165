// Chinese and English; Chinese by default for a zh browser, switchable (kept in localStorage).
import { ref } from 'vue'

const zh: Record<string, string> = {
  title: 'Shopdesk 客服工作台', login: '登录', shop: '店铺', username: '用户名', password: '密码', logout: '退出',
  online: '在线', busy: '挂起', away: '离开', offline: '离线', load: '接待量', sessions: '我的会话', noSessions: '暂无会话',
  presale: '售前', aftersale: '售后', unknown: '咨询', connected: '已连接', connecting: '连接中', disconnected: '已断开，正在重连…',
  send: '发送', placeholder: '输入消息，Enter 发送，Shift+Enter 换行，/ 快捷回复', recall: '撤回', recalled: '消息已撤回',
  read: '已读', unread: '未读', typing: '对方正在输入…', close: '结束会话', outcome: '结果', resolved: '已解决', ordered: '已下单',
  refunded: '已退款', noreply: '无回复', other: '其他', confirmClose: '确认结束', cancel: '取消', buyer: '买家信息', product: '商品',
  order: '订单', page: '来源页面', earlier: '历史会话', sendCard: '发送卡片', emoji: '表情', image: '图片', file: '文件',
  workspace: '工作台', agents: '客服与分组', live: '实时会话', waiting: '等待', selectConv: '选择左侧会话开始接待', loadOlder: '加载更早消息',
  closed: '已结束', queued: '排队中', open: '接待中', assignTo: '分配给', assign: '分配', create: '新建', displayName: '显示名',
  role: '角色', groups: '分组', skills: '技能', capacity: '上限', active: '启用', save: '保存', agent: '客服', manager: '主管',
  status: '状态', actions: '操作', deactivate: '停用', activate: '启用', resetPassword: '重置密码', newPassword: '新密码',
  state: '状态', kind: '类型', conversation: '会话', quickReplies: '快捷回复', sendFailed: '发送失败，将在重连后重试', sending: '发送中',
  systemAssigned: '已分配给 {0}', systemClosed: '会话已结束：{0}', lang: 'English', error: '出错了', wrongLogin: '店铺、用户名或密码错误',
  activeVersion: '生效版本', valid: '校验通过', invalid: '{0} 处错误', comment: '说明', saveDraft: '存草稿', shadow: '影子模式', publish: '发布',
  published: '已发布', saved: '已保存', shadowOn: '草稿已在影子模式运行', draftSaved: '草稿已保存', rolledBack: '已回滚到', defaultRule: '默认规则',
  addRule: '添加规则', simulator: '模拟器', recentSession: '近期会话', simulate: '模拟', versions: '版本历史', edit: '载入', rollback: '回滚',
  builtin: '内置默认', differ: '条结果不同', schedules: '排期',
  dashboard: '数据看板', lastHour: '最近 1 小时', lastDay: '最近 24 小时', queueLength: '排队数', longestWait: '最长等待', sessionsInPeriod: '会话数',
  assignTime: '分配耗时', firstResponse: '首次响应', satisfaction: '满意度', agentsByStatus: '客服状态', sessionsPerAgent: '每位客服会话数',
  origins: '允许嵌入挂件的来源', secrets: '买家令牌密钥', rotate: '轮换密钥',
  shopTime: '店铺时区', nowThere: '当地现在', version: '版本', schedWindow: '时间段', schedCron: '周期 (cron)', schedStart: '开始', schedEnd: '结束', schedFor: '持续',
  schedNeedWindow: '时间段需要开始和结束时间', schedNeedCron: '周期需要 cron 表达式和持续时长',
  search: '历史搜索', keyword: '关键词', buyerId: '买家 ID', since: '从', until: '到', any: '全部', results: '{0} 条结果', noResults: '没有找到', searchGo: '搜索',
  takeOver: '接管', takeOverNote: '接管原因（可选）', takenOver: '已接管会话', openChat: '在工作台打开', recalledMark: '已撤回',
  transfer: '转接', transferTo: '转接给', group: '分组', note: '备注', rules: '分流规则', me: '我', dropHere: '松开以上传', uploadFailed: '上传失败', none: '无',
}
const en: Record<string, string> = {
  title: 'Shopdesk workspace', login: 'Sign in', shop: 'Shop', username: 'Username', password: 'Password', logout: 'Sign out',
  online: 'Online', busy: 'Busy', away: 'Away', offline: 'Offline', load: 'Load', sessions: 'My sessions', noSessions: 'No sessions yet',
  presale: 'Pre-sale', aftersale: 'After-sale', unknown: 'Enquiry', connected: 'Connected', connecting: 'Connecting', disconnected: 'Disconnected, reconnecting…',
  send: 'Send', placeholder: 'Type a message: Enter sends, Shift+Enter new line, / quick replies', recall: 'Recall', recalled: 'Message recalled',
  read: 'Read', unread: 'Unread', typing: 'Buyer is typing…', close: 'Close session', outcome: 'Outcome', resolved: 'Resolved', ordered: 'Ordered',
  refunded: 'Refunded', noreply: 'No reply', other: 'Other', confirmClose: 'Close it', cancel: 'Cancel', buyer: 'Buyer', product: 'Product',
  order: 'Order', page: 'Page', earlier: 'Earlier sessions', sendCard: 'Send card', emoji: 'Emoji', image: 'Image', file: 'File',
  workspace: 'Workspace', agents: 'Agents & groups', live: 'Live view', waiting: 'Waiting', selectConv: 'Pick a session on the left', loadOlder: 'Load earlier messages',
  closed: 'Closed', queued: 'Queued', open: 'Open', assignTo: 'Assign to', assign: 'Assign', create: 'Create', displayName: 'Display name',
  role: 'Role', groups: 'Groups', skills: 'Skills', capacity: 'Capacity', active: 'Active', save: 'Save', agent: 'Agent', manager: 'Manager',
  status: 'Status', actions: 'Actions', deactivate: 'Deactivate', activate: 'Activate', resetPassword: 'Reset password', newPassword: 'New password',
  state: 'State', kind: 'Kind', conversation: 'Conversation', quickReplies: 'Quick replies', sendFailed: 'Not sent; retried after reconnecting', sending: 'Sending',
  systemAssigned: 'Assigned to {0}', systemClosed: 'Session closed: {0}', lang: '中文', error: 'Error', wrongLogin: 'Wrong shop, username or password',
  activeVersion: 'Active version', valid: 'Valid', invalid: '{0} error(s)', comment: 'Comment', saveDraft: 'Save draft', shadow: 'Shadow', publish: 'Publish',
  published: 'Published', saved: 'Saved', shadowOn: 'Draft runs in shadow', draftSaved: 'Draft saved', rolledBack: 'Rolled back to', defaultRule: 'Default',
  addRule: 'Add rule', simulator: 'Simulator', recentSession: 'Recent session', simulate: 'Simulate', versions: 'Versions', edit: 'Load', rollback: 'Roll back',
  builtin: 'built-in default', differ: 'differ', schedules: 'Schedules',
  dashboard: 'Dashboard', lastHour: 'Last hour', lastDay: 'Last 24 hours', queueLength: 'Queue length', longestWait: 'Longest wait', sessionsInPeriod: 'Sessions',
  assignTime: 'Assignment time', firstResponse: 'First response', satisfaction: 'Satisfaction', agentsByStatus: 'Agents by status', sessionsPerAgent: 'Sessions per agent',
  origins: 'Widget origins', secrets: 'Buyer-token secrets', rotate: 'Rotate secret',
  shopTime: 'Shop time zone', nowThere: 'now there', version: 'Version', schedWindow: 'Window', schedCron: 'Recurring (cron)', schedStart: 'Start', schedEnd: 'End', schedFor: 'for',
  schedNeedWindow: 'a window needs a start and an end', schedNeedCron: 'a recurring schedule needs a cron expression and a duration',
  search: 'Search', keyword: 'Keyword', buyerId: 'Buyer id', since: 'From', until: 'To', any: 'Any', results: '{0} result(s)', noResults: 'Nothing found', searchGo: 'Search',
  takeOver: 'Take over', takeOverNote: 'Reason (optional)', takenOver: 'Session taken over', openChat: 'Open in workspace', recalledMark: 'recalled',
  transfer: 'Transfer', transferTo: 'Transfer to', group: 'Group', note: 'Note', rules: 'Routing rules', me: 'Me', dropHere: 'Drop to upload', uploadFailed: 'Upload failed', none: 'None',
}

function initial(): 'zh' | 'en' {
  const saved = typeof localStorage !== 'undefined' ? localStorage.getItem('shopdesk.lang') : null
  if (saved === 'zh' || saved === 'en') return saved
  const nav = typeof navigator !== 'undefined' ? navigator.language || '' : ''
  return nav.toLowerCase().startsWith('zh') ? 'zh' : 'en'
}

export const lang = ref<'zh' | 'en'>(initial())

export function setLang(l: 'zh' | 'en') {
  lang.value = l
  try { localStorage.setItem('shopdesk.lang', l) } catch { /* private mode */ }
  document.documentElement.lang = l === 'zh' ? 'zh-CN' : 'en'
}

export function t(key: string, ...args: (string | number)[]): string {
  const s = (lang.value === 'zh' ? zh : en)[key] ?? key
  return s.replace(/\{(\d)\}/g, (_, i) => String(args[Number(i)] ?? ''))
}
