import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

// `npm run dev` proxies the API to a running admin-api (GENREC_ADMIN_URL, default the local stack's port).
const adminUrl = process.env.GENREC_ADMIN_URL || 'http://127.0.0.1:17075'

export default defineConfig({
  plugins: [vue()],
  base: './',
  server: { proxy: { '/api': { target: adminUrl, changeOrigin: true } } },
  build: {
    outDir: 'dist',
    chunkSizeWarningLimit: 1600,
    rolldownOptions: {
      output: {
        // Big libraries in their own long-lived chunks; pages load them only when needed.
        advancedChunks: {
          groups: [
            { name: 'antd', test: /node_modules[\\/](ant-design-vue|@ant-design|@babel|dayjs|lodash)/ },
            { name: 'echarts', test: /node_modules[\\/](echarts|zrender)/ },
            { name: 'three', test: /node_modules[\\/]three/ },
          ],
        },
      },
    },
  },
  test: {
    environment: 'jsdom',
    include: ['tests/unit/**/*.test.js'],
    css: false,
    setupFiles: ['tests/unit/setup.js'],
    testTimeout: 30000, // the first Ant Design mount takes seconds on a 2-core machine
    server: { deps: { inline: ['ant-design-vue'] } },
  },
})
