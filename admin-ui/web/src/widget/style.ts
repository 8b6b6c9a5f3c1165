// The widget's CSS, inside its shadow root.
export const CSS = `
:host{all:initial}
*{box-sizing:border-box;font:14px/1.45 system-ui,-apple-system,"PingFang SC","Microsoft YaHei",sans-serif}
.bubble{position:fixed;right:20px;bottom:20px;width:56px;height:56px;border-radius:50%;border:none;background:#ff6a00;color:#fff;font-size:24px;cursor:pointer;box-shadow:0 4px 12px #0003;z-index:2147483000}
.badge{position:absolute;top:-4px;right:-4px;background:#e5484d;color:#fff;border-radius:10px;font-size:12px;padding:0 6px;min-width:20px}
.panel{position:fixed;right:20px;bottom:88px;width:360px;height:520px;max-height:calc(100vh - 110px);background:#fff;border-radius:10px;box-shadow:0 8px 30px #0004;display:flex;flex-direction:column;overflow:hidden;z-index:2147483000}
.panel[hidden],.bubble[hidden],.badge[hidden],.ctx[hidden]{display:none}
header{display:flex;align-items:center;gap:8px;background:#ff6a00;color:#fff;padding:10px 12px}
header .title{font-weight:600;flex:1}.conn{font-size:11px}
.x{background:none;border:none;color:#fff;font-size:16px;cursor:pointer}
.status{font-size:12px;color:#555;background:#fff7ed;padding:4px 12px;min-height:22px}
.ctx{display:flex;gap:8px;align-items:center;padding:8px 12px;border-bottom:1px solid #eee}
.ctx img{width:44px;height:44px;object-fit:cover;border-radius:4px}
.ctx-text{flex:1;min-width:0}.ctx-kind{font-size:11px;color:#888}.ctx-title{font-weight:600;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}.ctx-price{color:#e5484d;font-size:12px}
.ctx-send{border:1px solid #ff6a00;color:#ff6a00;background:#fff;border-radius:14px;padding:3px 10px;cursor:pointer}
.list{flex:1;overflow-y:auto;padding:10px;display:flex;flex-direction:column;gap:8px;background:#f6f6f6}
.sys{align-self:center;font-size:12px;color:#777;background:#e9e9e9;border-radius:10px;padding:1px 10px}
.msg{display:flex;flex-direction:column;align-items:flex-start;max-width:80%}
.msg.own{align-self:flex-end;align-items:flex-end}
.b{background:#fff;border-radius:8px;padding:6px 10px;white-space:pre-wrap;word-break:break-word}
.own .b{background:#ffe8d6}.b.recalled{color:#888;font-style:italic;background:#eee}
.pending{opacity:.6}.receipt{font-size:11px;color:#999}.receipt.read{color:#2f9e44}
.img{max-width:200px;max-height:200px;display:block}
.typing{font-size:12px;color:#888;padding:0 12px;min-height:18px}
footer{display:flex;gap:6px;align-items:flex-end;padding:8px;border-top:1px solid #eee}
textarea{flex:1;resize:none;border:1px solid #ddd;border-radius:6px;padding:6px;height:38px}
.send{background:#ff6a00;color:#fff;border:none;border-radius:6px;padding:8px 14px;cursor:pointer}
.attach{cursor:pointer;font-size:18px;padding:6px 2px}
.rate{padding:8px 12px;border-top:1px solid #eee;display:flex;flex-direction:column;gap:6px}.rate[hidden],.rate-ok[hidden]{display:none}
.stars button{background:none;border:none;font-size:24px;color:#ccc;cursor:pointer;padding:0 2px}.stars button.on{color:#ffb400}
.rate-c{height:auto;flex:none}.rate-send{background:#ff6a00;color:#fff;border:none;border-radius:6px;padding:8px 14px;cursor:pointer}.rate-send:disabled{opacity:.5;cursor:default}.rate-err{color:#e5484d;font-size:12px}
.rate-ok{padding:8px 12px;color:#2f9e44;border-top:1px solid #eee}
.picker{display:flex;flex-wrap:wrap;gap:6px;padding:8px 12px;border-top:1px solid #eee}.picker[hidden],.emojis[hidden]{display:none}
.pick-q{width:100%;font-size:12px;color:#777}.pick{border:1px solid #ff6a00;color:#ff6a00;background:#fff;border-radius:14px;padding:3px 10px;cursor:pointer}
.emojis{display:flex;flex-wrap:wrap;gap:2px;padding:4px 8px;border-top:1px solid #eee}.emojis .e,.emo{background:none;border:none;font-size:20px;cursor:pointer;padding:2px}
.avatar{display:inline-flex;align-items:center;justify-content:center;width:20px;height:20px;border-radius:50%;background:#ff6a00;color:#fff;font-size:11px;margin-right:6px;vertical-align:middle}
@media (max-width:480px){.panel{right:0;bottom:0;width:100vw;height:100vh;max-height:100vh;border-radius:0}}
`
