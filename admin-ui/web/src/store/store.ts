// The demo store: a few products and a "my orders" page for the demo shop, each with the widget.
import './store.css'

interface Product { id: string; title: string; price: string; color: string; category: string; text: string }
const PRODUCTS: Product[] = [
  { id: '101', title: 'Celadon tea cup', price: '¥29.00', color: '#8fbcaa', category: 'cups', text: 'Hand-glazed celadon cup, 120 ml. Dishwasher-safe.' },
  { id: '102', title: 'Yixing clay teapot', price: '¥268.00', color: '#a0522d', category: 'teapots', text: 'Purple clay teapot, 200 ml, made in Yixing.' },
  { id: '103', title: 'Longjing green tea 100 g', price: '¥88.00', color: '#6b8e23', category: 'tea', text: 'Spring harvest West Lake Longjing.' },
  { id: '104', title: 'Travel tea set', price: '¥159.00', color: '#4682b4', category: 'sets', text: 'One pot, four cups and a case.' },
]
const ORDERS = [
  { id: 'SO-7731', title: 'Celadon tea cup ×2', price: '¥58.00', status: 'shipped' },
  { id: 'SO-7702', title: 'Yixing clay teapot', price: '¥268.00', status: 'delivered' },
]

function img(p: Product) {
  return 'data:image/svg+xml,' + encodeURIComponent(`<svg xmlns="http://www.w3.org/2000/svg" width="160" height="160"><rect width="160" height="160" fill="${p.color}"/><text x="80" y="92" font-size="48" text-anchor="middle" fill="#fff">${p.title[0]}</text></svg>`)
}
function h(tag: string, attrs: Record<string, string> = {}, ...kids: (Node | string)[]) {
  const e = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v)
  e.append(...kids)
  return e
}
function shopdesk(): any { return (window as any).Shopdesk }
function whenReady(f: () => void) {
  if (shopdesk()?.open) f()
  else window.addEventListener('shopdesk:ready', f, { once: true })
}

const main = document.getElementById('main')!
const page = document.body.dataset.page

if (page === 'home') {
  const grid = h('div', { class: 'grid' })
  for (const p of PRODUCTS) {
    grid.append(h('a', { class: 'tile', href: `/store/product.html?id=${p.id}`, 'data-testid': 'product-' + p.id },
      h('img', { src: img(p), alt: '' }), h('div', { class: 'name' }, p.title), h('div', { class: 'price' }, p.price)))
  }
  main.append(h('h1', {}, 'Demo Tea House'), grid)
} else if (page === 'product') {
  const id = new URLSearchParams(location.search).get('id') || PRODUCTS[0].id
  const p = PRODUCTS.find((x) => x.id === id) || PRODUCTS[0]
  for (const [k, v] of [['product_id', p.id], ['product_name', p.title], ['category', p.category]]) {
    document.head.append(h('meta', { name: 'shopdesk:' + k, content: v }))
  }
  const ask = h('button', { class: 'ask', 'data-testid': 'ask-product' }, 'Ask customer service / 咨询客服')
  ask.addEventListener('click', () => whenReady(() => shopdesk().open({ product: { id: p.id, title: p.title, price: p.price, image: img(p), url: location.href, category: p.category } })))
  main.append(h('div', { class: 'product' }, h('img', { src: img(p), alt: '' }),
    h('div', {}, h('h1', {}, p.title), h('div', { class: 'price' }, p.price), h('p', {}, p.text), h('button', { class: 'buy' }, 'Add to cart'), ' ', ask)))
} else if (page === 'orders') {
  const list = h('div', { class: 'orders' })
  for (const o of ORDERS) {
    const ask = h('button', { class: 'ask', 'data-testid': 'ask-order-' + o.id }, 'Ask about this order / 咨询订单')
    ask.addEventListener('click', () => whenReady(() => shopdesk().open({ order: o })))
    list.append(h('div', { class: 'order' }, h('strong', {}, o.id), ' ', o.title, ' ', h('span', { class: 'price' }, o.price), ' ', h('em', {}, o.status), ' ', ask))
  }
  main.append(h('h1', {}, 'My orders'), list)
}
