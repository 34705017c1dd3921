// Mounts GraphiQL on this API. The access token typed above the editor is kept in this
// browser tab's sessionStorage only and sent as `Authorization: Bearer <token>` with every
// request; a header set in GraphiQL's Headers tab wins over it. A link ending in
// `#query=<url-encoded document>` opens with that document in the editor. Subscriptions run
// over a WebSocket on /graphql (graphql-transport-ws, the token in `connection_init`), their
// events shown as they come.
(function () {
  'use strict';
  var KEY = 'linkai.accessToken';
  var input = document.getElementById('access-token');
  input.value = window.sessionStorage.getItem(KEY) || '';
  input.addEventListener('input', function () {
    window.sessionStorage.setItem(KEY, input.value.trim());
  });
  document.getElementById('forget-token').addEventListener('click', function () {
    input.value = '';
    window.sessionStorage.removeItem(KEY);
  });
  document.getElementById('token-bar').addEventListener('submit', function (event) {
    event.preventDefault();
  });

  // The selected operation is a subscription (GraphiQL sends the whole document).
  function isSubscription(params) {
    var name = params.operationName;
    var pattern = name
      ? new RegExp('\\bsubscription\\s+' + name + '\\b')
      : /^\s*subscription\b/m;
    return pattern.test(params.query || '');
  }

  // One subscription on its own socket, as an async iterable of results: what GraphiQL
  // shows as a stream. Stopping it in GraphiQL closes the socket.
  function subscribe(params) {
    var url = window.location.origin.replace(/^http/, 'ws') + '/graphql';
    var socket = new WebSocket(url, 'graphql-transport-ws');
    var results = [];
    var waiting = null;
    var finished = false;
    function push(result) {
      if (waiting) { var resolve = waiting; waiting = null; resolve({ value: result, done: false }); }
      else results.push(result);
    }
    function finish() {
      finished = true;
      if (waiting) { var resolve = waiting; waiting = null; resolve({ value: undefined, done: true }); }
    }
    socket.onopen = function () {
      var token = input.value.trim();
      socket.send(JSON.stringify({
        type: 'connection_init',
        payload: token ? { authorization: 'Bearer ' + token } : {}
      }));
    };
    socket.onmessage = function (message) {
      var data = JSON.parse(message.data);
      if (data.type === 'connection_ack') {
        socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: params }));
      } else if (data.type === 'ping') {
        socket.send(JSON.stringify({ type: 'pong' }));
      } else if (data.type === 'next') {
        push(data.payload);
      } else if (data.type === 'error') {
        push({ errors: data.payload });
        finish();
      } else if (data.type === 'complete') {
        finish();
      }
    };
    socket.onclose = function (event) {
      if (!finished) {
        push({ errors: [{ message: 'The socket closed (' + event.code + (event.reason ? ': ' + event.reason : '') + ').' }] });
        finish();
      }
    };
    var iterator = {
      next: function () {
        if (results.length) return Promise.resolve({ value: results.shift(), done: false });
        if (finished) return Promise.resolve({ value: undefined, done: true });
        return new Promise(function (resolve) { waiting = resolve; });
      },
      return: function () {
        finished = true;
        socket.close(1000);
        return Promise.resolve({ value: undefined, done: true });
      }
    };
    iterator[Symbol.asyncIterator] = function () { return iterator; };
    return iterator;
  }

  function fetcher(params, options) {
    if (isSubscription(params)) return subscribe(params);
    var headers = {
      'Content-Type': 'application/json',
      Accept: 'application/graphql-response+json, application/json;q=0.9'
    };
    var token = input.value.trim();
    if (token) headers.Authorization = 'Bearer ' + token;
    var extra = (options && options.headers) || {};
    Object.keys(extra).forEach(function (name) { headers[name] = extra[name]; });
    return fetch('/graphql', {
      method: 'POST',
      headers: headers,
      body: JSON.stringify(params)
    }).then(function (response) { return response.json(); });
  }

  var linked = new URLSearchParams(window.location.hash.slice(1)).get('query');
  var props = {
    fetcher: fetcher,
    defaultEditorToolsVisibility: true,
    shouldPersistHeaders: false,
    defaultQuery:
      '# Paste an access token above, then run this with the play button.\n' +
      '{\n  me {\n    email\n    activeWorkspace { name viewerRole }\n  }\n}\n'
  };
  if (linked) props.initialQuery = linked;
  var element = document.getElementById('graphiql');
  element.textContent = '';
  window.LinkAIGraphiQL.mount(element, props);
})();
