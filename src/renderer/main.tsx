// First: sets up React Fast Refresh in `electron-vite dev` without the inline <script> that the CSP refuses
// (an empty module in a production build).
import '@vitejs/plugin-react/preamble';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './App';
import { createClient } from './client';
import { applyTheme, initialTheme } from './theme';
import { ClientContext } from './useInvoke';
import './styles.css';

applyTheme(initialTheme());
const client = createClient();

const root = document.getElementById('root');
if (!root) throw new Error('index.html has no #root element');
createRoot(root).render(
  <StrictMode>
    <ClientContext.Provider value={client}>
      <App />
    </ClientContext.Provider>
  </StrictMode>,
);
