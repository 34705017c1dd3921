// The playground bundle: GraphiQL 5 (React 19, Monaco) as one script and one stylesheet,
// with Monaco's workers as files of their own. `vendor.sh` builds it with esbuild; the
// binary serves the result under /graphiql/ and `playground.js` mounts it.
import { createElement } from 'react';
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import 'graphiql/style.css';

// Monaco's workers come from this server too: no CDN, no blob: URLs.
globalThis.MonacoEnvironment = {
  getWorker(_id, label) {
    const file =
      label === 'json' ? 'json.worker.js' : label === 'graphql' ? 'graphql.worker.js' : 'editor.worker.js';
    return new Worker(`/graphiql/${file}`);
  },
};

window.LinkAIGraphiQL = {
  mount(element, props) {
    createRoot(element).render(createElement(GraphiQL, props));
  },
};
