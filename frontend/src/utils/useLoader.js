import { ref } from 'vue'
import { errorMessage } from '../api/http'

// `loading` and `error` around an async task, as every page shows them (AsyncBlock):
// `run(...args)` clears the error, awaits the task and keeps a readable message on failure.
export function useLoader(task) {
  const loading = ref(false)
  const error = ref('')
  async function run(...args) {
    loading.value = true
    error.value = ''
    try {
      return await task(...args)
    } catch (e) {
      error.value = errorMessage(e)
      return undefined
    } finally {
      loading.value = false
    }
  }
  return { loading, error, run }
}
