// Mounts GraphiQL on this API. The access token typed above the editor is kept in this
// browser's sessionStorage only and sent as `Authorization: Bearer <token>` with every
// request; a header set in GraphiQL's Headers tab wins over it.
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

  function fetcher(params, options) {
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

  var root = window.ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(window.React.createElement(window.GraphiQL, {
    fetcher: fetcher,
    defaultEditorToolsVisibility: true,
    shouldPersistHeaders: false
  }));
})();
