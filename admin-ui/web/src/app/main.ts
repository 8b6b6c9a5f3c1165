import { createApp } from 'vue'
import App from './App.vue'
import { lang } from './i18n'
import './style.css'

document.documentElement.lang = lang.value === 'zh' ? 'zh-CN' : 'en'
createApp(App).mount('#app')
