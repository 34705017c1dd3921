// Mounts GraphiQL on this API. The access token typed above the editor is kept in this
// browser tab's sessionStorage only and sent as `Authorization: Bearer <token>` with every
// request; a header set in GraphiQL's Headers tab wins over it. A link ending in
// `#query=<url-encoded document>` opens with that document in the editor.
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
