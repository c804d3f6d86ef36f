/*
 * docs.js: renders this server's OpenAPI 3.1 document as a reference page.
 *
 * It fetches `openapi.json` relative to the page and builds the DOM with
 * createElement and textContent only: nothing from the document is ever
 * parsed as HTML, so a description cannot inject markup or scripts. It
 * loads nothing else, from anywhere (the server's Content-Security-Policy
 * enforces that too). Links in descriptions that point elsewhere are shown
 * as text, not followed.
 *
 * What it renders: the info block and servers, a table of contents by tag,
 * every operation (method, path, summary, description, security, parameters,
 * request body, responses with headers, schemas and examples), and every
 * component schema. Internal `$ref`s become links to the component, and are
 * expanded in place a few levels deep (cycles are cut).
 */
(function () {
  'use strict';

  var METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
  var MAX_EXPAND_DEPTH = 4;

  // ---- DOM helpers ------------------------------------------------------

  /* el('div', {className: 'x'}, child, 'text', [more]) -> element. */
  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === undefined || v === null || v === false) {
          return;
        }
        if (k === 'className') {
          node.className = v;
        } else if (k === 'text') {
          node.textContent = String(v);
        } else if (k.indexOf('data-') === 0 || k === 'href' || k === 'id' || k === 'title' ||
                   k === 'open' || k === 'colspan' || k === 'scope' || k === 'role' ||
                   k.indexOf('aria-') === 0) {
          node.setAttribute(k, v === true ? '' : String(v));
        } else {
          throw new Error('el: unknown attribute ' + k);
        }
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      append(node, arguments[i]);
    }
    return node;
  }

  function append(node, child) {
    if (child === undefined || child === null || child === false) {
      return;
    }
    if (Array.isArray(child)) {
      child.forEach(function (c) { append(node, c); });
    } else if (typeof child === 'string' || typeof child === 'number') {
      node.appendChild(document.createTextNode(String(child)));
    } else {
      node.appendChild(child);
    }
  }

  function slug(s) {
    return String(s).replace(/[^A-Za-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '') || 'x';
  }

  function opAnchor(method, path, op) {
    return 'op-' + (op.operationId ? slug(op.operationId) : slug(method + '-' + path));
  }

  // ---- references -------------------------------------------------------

  /* The object an internal reference ("#/components/schemas/User") names. */
  function lookup(doc, ref) {
    if (typeof ref !== 'string' || ref.charAt(0) !== '#') {
      return undefined;
    }
    var node = doc;
    var parts = ref.slice(1).split('/').slice(1);
    for (var i = 0; i < parts.length; i++) {
      var key = parts[i].replace(/~1/g, '/').replace(/~0/g, '~');
      if (node === null || typeof node !== 'object' || !(key in node)) {
        return undefined;
      }
      node = node[key];
    }
    return node;
  }

  function refName(ref) {
    var parts = String(ref).split('/');
    return parts[parts.length - 1].replace(/~1/g, '/').replace(/~0/g, '~');
  }

  /* Follows $ref chains of parameters, responses, headers, request bodies. */
  function deref(doc, obj) {
    for (var i = 0; i < 32 && obj && typeof obj === 'object' && typeof obj.$ref === 'string'; i++) {
      var target = lookup(doc, obj.$ref);
      if (target === undefined) {
        return obj;
      }
      obj = target;
    }
    return obj;
  }

  // ---- a small, safe subset of Markdown (CommonMark as OpenAPI allows) --

  function isOwnLink(url) {
    // Fragments and relative paths stay on this server. A scheme
    // ("mailto:", "https:") or a network-path reference (two slashes or
    // backslashes, then a host) would name another host: shown as text.
    return !/^[A-Za-z][A-Za-z0-9+.-]*:/.test(url) && !/^[\/\\]{2}/.test(url);
  }

  function inline(text) {
    var out = [];
    var re = /`([^`]+)`|\*\*([^*]+)\*\*|\[([^\]]+)\]\(([^)\s]+)\)|\*([^*\s][^*]*)\*/g;
    var last = 0;
    var m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) {
        out.push(text.slice(last, m.index));
      }
      if (m[1] !== undefined) {
        out.push(el('code', {text: m[1]}));
      } else if (m[2] !== undefined) {
        out.push(el('strong', null, inline(m[2])));
      } else if (m[3] !== undefined) {
        if (isOwnLink(m[4])) {
          out.push(el('a', {href: m[4]}, inline(m[3])));
        } else {
          out.push(el('span', {className: 'ext-link', title: m[4]}, inline(m[3])));
        }
      } else {
        out.push(el('em', null, inline(m[5])));
      }
      last = re.lastIndex;
    }
    if (last < text.length) {
      out.push(text.slice(last));
    }
    return out;
  }

  function markdown(text) {
    if (typeof text !== 'string' || text.trim() === '') {
      return null;
    }
    var box = el('div', {className: 'md'});
    var lines = text.replace(/\r\n?/g, '\n').split('\n');
    var i = 0;
    var para = [];
    function flush() {
      if (para.length) {
        box.appendChild(el('p', null, inline(para.join(' '))));
        para = [];
      }
    }
    while (i < lines.length) {
      var line = lines[i];
      var fence = /^```/.test(line);
      var heading = /^(#{1,6})\s+(.*)$/.exec(line);
      var item = /^\s*[-*+]\s+(.*)$/.exec(line);
      var numbered = /^\s*\d+[.)]\s+(.*)$/.exec(line);
      if (fence) {
        flush();
        var code = [];
        for (i++; i < lines.length && !/^```/.test(lines[i]); i++) {
          code.push(lines[i]);
        }
        i++;
        box.appendChild(el('pre', null, el('code', {text: code.join('\n')})));
      } else if (heading) {
        flush();
        var level = Math.min(6, heading[1].length + 2);
        box.appendChild(el('h' + level, null, inline(heading[2])));
        i++;
      } else if (item || numbered) {
        flush();
        var list = el(item ? 'ul' : 'ol');
        var itemRe = item ? /^\s*[-*+]\s+(.*)$/ : /^\s*\d+[.)]\s+(.*)$/;
        var current = null;
        while (i < lines.length && lines[i].trim() !== '') {
          var mm = itemRe.exec(lines[i]);
          if (mm) {
            current = [mm[1]];
            list.appendChild(el('li'));
          } else {
            current.push(lines[i].trim());
          }
          var li = list.lastChild;
          li.textContent = '';
          append(li, inline(current.join(' ')));
          i++;
        }
        box.appendChild(list);
      } else if (line.trim() === '') {
        flush();
        i++;
      } else {
        para.push(line.trim());
        i++;
      }
    }
    flush();
    return box;
  }

  // ---- schemas ----------------------------------------------------------

  function types(schema) {
    if (Array.isArray(schema.type)) {
      return schema.type;
    }
    return schema.type ? [schema.type] : [];
  }

  /* A one-line type: "string (uuid)", "array of User", "integer | null". */
  function typeLabel(doc, schema) {
    if (!schema || typeof schema !== 'object') {
      return schema === false ? 'nothing' : 'any';
    }
    if (schema.$ref) {
      return refName(schema.$ref);
    }
    if ('const' in schema) {
      return 'const ' + JSON.stringify(schema['const']);
    }
    var ts = types(schema);
    var label = ts.map(function (t) {
      if (t === 'array') {
        return 'array of ' + typeLabel(doc, schema.items);
      }
      if (schema.format && t !== 'null') {
        return t + ' (' + schema.format + ')';
      }
      return t;
    }).join(' | ');
    if (!label) {
      if (schema.oneOf) {
        return 'one of ' + schema.oneOf.length;
      }
      if (schema.anyOf) {
        return 'any of ' + schema.anyOf.length;
      }
      if (schema.allOf) {
        return 'all of ' + schema.allOf.length;
      }
      if (schema.properties) {
        return 'object';
      }
      if (schema.enum) {
        return 'enum';
      }
      return 'any';
    }
    return label;
  }

  var CONSTRAINTS = [
    ['minLength', 'min length'], ['maxLength', 'max length'], ['pattern', 'pattern'],
    ['minimum', 'minimum'], ['maximum', 'maximum'], ['exclusiveMinimum', 'greater than'],
    ['exclusiveMaximum', 'less than'], ['multipleOf', 'multiple of'], ['minItems', 'min items'],
    ['maxItems', 'max items'], ['uniqueItems', 'unique items'], ['minProperties', 'min members'],
    ['maxProperties', 'max members'], ['default', 'default'], ['contentMediaType', 'media type']
  ];

  function facts(schema) {
    var out = [];
    CONSTRAINTS.forEach(function (c) {
      if (schema[c[0]] !== undefined) {
        out.push(el('span', {className: 'fact'}, c[1] + ' ', el('code', {text: JSON.stringify(schema[c[0]])})));
      }
    });
    if (Array.isArray(schema.enum)) {
      out.push(el('span', {className: 'fact'}, 'one of ',
        schema.enum.map(function (v, i) {
          return [i ? ', ' : '', el('code', {text: JSON.stringify(v)})];
        })));
    }
    if (schema.readOnly) {
      out.push(el('span', {className: 'fact flag'}, 'read-only'));
    }
    if (schema.writeOnly) {
      out.push(el('span', {className: 'fact flag'}, 'write-only'));
    }
    if (schema.deprecated) {
      out.push(el('span', {className: 'fact flag warn'}, 'deprecated'));
    }
    return out.length ? el('div', {className: 'facts'}, out) : null;
  }

  function examples(schema) {
    var list = [];
    if (schema && Array.isArray(schema.examples)) {
      list = schema.examples;
    } else if (schema && schema.example !== undefined) {
      list = [schema.example];
    }
    return list.map(function (x) { return example(x); });
  }

  function example(value, title) {
    var text = typeof value === 'string' ? value : JSON.stringify(value, null, 2);
    return el('div', {className: 'example'},
      el('div', {className: 'example-title', text: title || 'Example'}),
      el('pre', null, el('code', {text: text})));
  }

  /* The body of a schema: its facts, description, members, items, variants.
     seen: the $refs being expanded above this one (cycles stop there). */
  function schemaBody(doc, schema, depth, seen) {
    var box = el('div', {className: 'schema'});
    if (schema === true || schema === undefined) {
      box.appendChild(el('span', {className: 'type', text: 'any value'}));
      return box;
    }
    if (schema === false) {
      box.appendChild(el('span', {className: 'type', text: 'no value is allowed'}));
      return box;
    }
    if (schema.$ref) {
      box.appendChild(refNode(doc, schema.$ref, depth, seen));
      return box;
    }
    append(box, el('div', {className: 'type-line'}, el('span', {className: 'type', text: typeLabel(doc, schema)}),
      schema.title ? [' ', el('span', {className: 'title', text: schema.title})] : null));
    append(box, facts(schema));
    append(box, markdown(schema.description));
    if (schema.properties || schema.additionalProperties !== undefined ||
        schema.patternProperties) {
      box.appendChild(propertiesTable(doc, schema, depth, seen));
    }
    if (schema.items && typeof schema.items === 'object' && !schema.items.$ref && depth < MAX_EXPAND_DEPTH &&
        (schema.items.properties || schema.items.oneOf || schema.items.anyOf || schema.items.allOf)) {
      box.appendChild(el('div', {className: 'sub'}, el('div', {className: 'sub-title', text: 'Items'}),
        schemaBody(doc, schema.items, depth + 1, seen)));
    } else if (schema.items && schema.items.$ref) {
      box.appendChild(el('div', {className: 'sub'}, el('div', {className: 'sub-title', text: 'Items'}),
        refNode(doc, schema.items.$ref, depth + 1, seen)));
    }
    ['oneOf', 'anyOf', 'allOf'].forEach(function (k) {
      if (Array.isArray(schema[k])) {
        var title = {oneOf: 'Exactly one of', anyOf: 'Any of', allOf: 'All of'}[k];
        box.appendChild(el('div', {className: 'sub'}, el('div', {className: 'sub-title', text: title}),
          el('ol', {className: 'variants'}, schema[k].map(function (s) {
            return el('li', null, schemaBody(doc, s, depth + 1, seen));
          }))));
      }
    });
    if (schema.not) {
      box.appendChild(el('div', {className: 'sub'}, el('div', {className: 'sub-title', text: 'Not'}),
        schemaBody(doc, schema.not, depth + 1, seen)));
    }
    append(box, examples(schema));
    return box;
  }

  function propertiesTable(doc, schema, depth, seen) {
    var required = Array.isArray(schema.required) ? schema.required : [];
    var rows = Object.keys(schema.properties || {}).map(function (name) {
      var prop = schema.properties[name];
      var nested = null;
      if (prop && typeof prop === 'object' && depth < MAX_EXPAND_DEPTH &&
          (prop.$ref || prop.properties || prop.oneOf || prop.anyOf || prop.allOf ||
           (prop.items && (prop.items.$ref || prop.items.properties)))) {
        nested = schemaBody(doc, prop, depth + 1, seen);
      }
      return el('tr', null,
        el('td', {className: 'name'}, el('code', {text: name}),
          required.indexOf(name) >= 0 ? el('span', {className: 'required', text: 'required'}) : null),
        el('td', null,
          nested || [el('span', {className: 'type', text: typeLabel(doc, prop)}), facts(prop || {}),
                     markdown(prop && prop.description), examples(prop)]));
    });
    if (schema.patternProperties) {
      Object.keys(schema.patternProperties).forEach(function (p) {
        rows.push(el('tr', null, el('td', {className: 'name'}, 'names matching ', el('code', {text: p})),
          el('td', null, schemaBody(doc, schema.patternProperties[p], depth + 1, seen))));
      });
    }
    if (schema.additionalProperties === false) {
      rows.push(el('tr', {className: 'closed'}, el('td', {colspan: 2, text: 'No other members are allowed.'})));
    } else if (schema.additionalProperties && typeof schema.additionalProperties === 'object') {
      rows.push(el('tr', null, el('td', {className: 'name', text: 'other members'}),
        el('td', null, schemaBody(doc, schema.additionalProperties, depth + 1, seen))));
    }
    return el('table', {className: 'props'},
      el('thead', null, el('tr', null, el('th', {scope: 'col', text: 'Member'}), el('th', {scope: 'col', text: 'Schema'}))),
      el('tbody', null, rows));
  }

  /* A link to a component schema, expanded in a <details> unless it is
     already being expanded higher up (a cycle) or too deep. */
  function refNode(doc, ref, depth, seen) {
    var name = refName(ref);
    var target = lookup(doc, ref);
    var link = ref.indexOf('#/components/schemas/') === 0
      ? el('a', {className: 'ref', href: '#schema-' + slug(name), text: name})
      : el('code', {text: ref});
    if (target === undefined) {
      return el('span', {className: 'ref-missing'}, link, ' (unresolved reference)');
    }
    if (seen.indexOf(ref) >= 0 || depth >= MAX_EXPAND_DEPTH) {
      return el('span', {className: 'type'}, link);
    }
    return el('details', {className: 'ref-details', open: depth < 2},
      el('summary', null, link),
      schemaBody(doc, target, depth + 1, seen.concat([ref])));
  }

  // ---- operations -------------------------------------------------------

  function mergedParameters(doc, pathItem, op) {
    var byKey = {};
    var order = [];
    [pathItem.parameters || [], op.parameters || []].forEach(function (list) {
      list.forEach(function (p) {
        var r = deref(doc, p);
        var key = r.in + ':' + r.name;
        if (!(key in byKey)) {
          order.push(key);
        }
        byKey[key] = r;
      });
    });
    return order.map(function (k) { return byKey[k]; });
  }

  function parametersNode(doc, params) {
    if (!params.length) {
      return null;
    }
    return el('div', {className: 'block'},
      el('h4', {text: 'Parameters'}),
      el('table', {className: 'params'},
        el('thead', null, el('tr', null,
          ['Name', 'In', 'Schema', 'Description'].map(function (h) { return el('th', {scope: 'col', text: h}); }))),
        el('tbody', null, params.map(function (p) {
          return el('tr', {'data-param': p.name},
            el('td', {className: 'name'}, el('code', {text: p.name}),
              p.required ? el('span', {className: 'required', text: 'required'}) : null,
              p.deprecated ? el('span', {className: 'fact flag warn', text: 'deprecated'}) : null),
            el('td', {text: p.in}),
            el('td', null, p.schema ? [el('span', {className: 'type', text: typeLabel(doc, p.schema)}), facts(p.schema)] : null),
            el('td', null, markdown(p.description),
              p.example !== undefined ? example(p.example) : null));
        }))));
  }

  function contentNode(doc, content) {
    if (!content) {
      return null;
    }
    return Object.keys(content).map(function (mt) {
      var media = content[mt] || {};
      var exs = [];
      if (media.example !== undefined) {
        exs.push(example(media.example));
      }
      if (media.examples) {
        Object.keys(media.examples).forEach(function (k) {
          var x = deref(doc, media.examples[k]);
          if (x && x.value !== undefined) {
            exs.push(example(x.value, x.summary || k));
          }
        });
      }
      return el('div', {className: 'media'},
        el('div', {className: 'media-type'}, el('code', {text: mt})),
        media.schema !== undefined ? schemaBody(doc, media.schema, 0, []) : null,
        exs);
    });
  }

  function requestBodyNode(doc, op) {
    if (!op.requestBody) {
      return null;
    }
    var body = deref(doc, op.requestBody);
    return el('div', {className: 'block'},
      el('h4', null, 'Request body', body.required ? el('span', {className: 'required', text: 'required'}) : null),
      markdown(body.description),
      contentNode(doc, body.content));
  }

  function headersNode(doc, headers) {
    var names = Object.keys(headers || {});
    if (!names.length) {
      return null;
    }
    return el('table', {className: 'headers'},
      el('thead', null, el('tr', null, el('th', {scope: 'col', text: 'Header'}), el('th', {scope: 'col', text: 'Description'}))),
      el('tbody', null, names.map(function (n) {
        var h = deref(doc, headers[n]);
        return el('tr', null,
          el('td', {className: 'name'}, el('code', {text: n}),
            h.schema ? [' ', el('span', {className: 'type', text: typeLabel(doc, h.schema)})] : null),
          el('td', null, markdown(h.description)));
      })));
  }

  function responsesNode(doc, op) {
    var codes = Object.keys(op.responses || {});
    if (!codes.length) {
      return null;
    }
    return el('div', {className: 'block'},
      el('h4', {text: 'Responses'}),
      codes.map(function (code) {
        var r = deref(doc, op.responses[code]);
        var cls = 'status status-' + String(code).charAt(0);
        var head = headline(r.description);
        var rest = typeof r.description === 'string' && r.description.replace(/[.\s]+$/, '') !== head
          ? markdown(r.description) : null;
        return el('details', {className: 'response', 'data-status': code, open: /^2/.test(code)},
          el('summary', null, el('span', {className: cls, text: code}), ' ',
            el('span', {className: 'response-summary'}, inline(head))),
          rest,
          headersNode(doc, r.headers),
          contentNode(doc, r.content));
      }));
  }

  /* The start of a description, up to its first ':' ';' or '.', for a
     one-line summary ("Not ready: a required..." -> "Not ready"). */
  function headline(text) {
    if (typeof text !== 'string') {
      return '';
    }
    var line = text.split('\n')[0];
    var m = /^[^:;.`]{1,80}(?=[:;.]|$)/.exec(line);
    if (m) {
      return m[0].trim();
    }
    var plain = line.replace(/`/g, '');
    if (plain.length <= 80) {
      return plain;
    }
    var cut = plain.lastIndexOf(' ', 77);
    return plain.slice(0, cut > 20 ? cut : 77) + '...';
  }

  function securityNode(doc, op) {
    var reqs = op.security !== undefined ? op.security : doc.security;
    if (!reqs) {
      return null;
    }
    if (!reqs.length) {
      return el('div', {className: 'security'}, el('span', {className: 'fact flag', text: 'no authentication'}));
    }
    return el('div', {className: 'security'}, 'Needs ',
      reqs.map(function (req, i) {
        var parts = Object.keys(req).map(function (name) {
          var scopes = req[name] || [];
          return [el('a', {href: '#security-' + slug(name), text: name}),
            scopes.length ? [' with scope ', scopes.map(function (s, j) {
              return [j ? ', ' : '', el('code', {text: s})];
            })] : null];
        });
        return [i ? ' or ' : '', parts.length ? parts : 'nothing'];
      }));
  }

  function operationNode(doc, path, method, pathItem, op) {
    return el('section', {className: 'op', id: opAnchor(method, path, op), 'data-method': method, 'data-path': path},
      el('h3', {className: 'op-head'},
        el('span', {className: 'method method-' + method, text: method.toUpperCase()}), ' ',
        el('code', {className: 'path', text: path}),
        op.deprecated ? el('span', {className: 'fact flag warn', text: 'deprecated'}) : null),
      op.summary ? el('p', {className: 'op-summary', text: op.summary}) : null,
      markdown(op.description),
      securityNode(doc, op),
      parametersNode(doc, mergedParameters(doc, pathItem, op)),
      requestBodyNode(doc, op),
      responsesNode(doc, op));
  }

  /* Every operation, in document order: [{path, method, item, op}]. */
  function operations(doc) {
    var out = [];
    Object.keys(doc.paths || {}).forEach(function (path) {
      var item = deref(doc, doc.paths[path]) || {};
      METHODS.forEach(function (m) {
        if (item[m]) {
          out.push({path: path, method: m, item: item, op: item[m]});
        }
      });
    });
    return out;
  }

  /* Operations grouped by their first tag, in the order of doc.tags. */
  function groups(doc, ops) {
    var order = (doc.tags || []).map(function (t) { return t.name; });
    var byTag = {};
    ops.forEach(function (o) {
      var tag = (o.op.tags && o.op.tags[0]) || 'Other';
      if (order.indexOf(tag) < 0) {
        order.push(tag);
      }
      (byTag[tag] = byTag[tag] || []).push(o);
    });
    return order.filter(function (t) { return byTag[t]; }).map(function (t) {
      var meta = (doc.tags || []).filter(function (x) { return x.name === t; })[0] || {};
      return {name: t, description: meta.description, ops: byTag[t]};
    });
  }

  // ---- the page ---------------------------------------------------------

  function headerNode(doc) {
    var info = doc.info || {};
    return el('header', {className: 'intro'},
      el('h1', null, info.title || 'API', info.version ? el('span', {className: 'version', text: 'v' + info.version}) : null),
      info.summary ? el('p', {className: 'summary', text: info.summary}) : null,
      el('p', {className: 'meta'}, 'OpenAPI ', el('code', {text: String(doc.openapi || '?')}), ' · ',
        el('a', {href: 'openapi.json', text: 'openapi.json'})),
      (doc.servers || []).length ? el('div', {className: 'servers'}, el('h4', {text: 'Servers'}),
        el('ul', null, doc.servers.map(function (s) {
          return el('li', null, el('code', {text: s.url}), s.description ? ' ' + s.description : null);
        }))) : null,
      markdown(info.description));
  }

  function navNode(groupsList, doc) {
    var schemas = Object.keys((doc.components && doc.components.schemas) || {});
    return el('nav', {className: 'toc', 'aria-label': 'Contents'},
      el('div', {className: 'toc-title', text: 'Contents'}),
      groupsList.map(function (g) {
        return el('div', {className: 'toc-group'},
          el('a', {className: 'toc-tag', href: '#tag-' + slug(g.name), text: g.name}),
          el('ul', null, g.ops.map(function (o) {
            return el('li', null, el('a', {href: '#' + opAnchor(o.method, o.path, o.op)},
              el('span', {className: 'method method-' + o.method, text: o.method.toUpperCase()}), ' ', o.path));
          })));
      }),
      schemas.length ? el('div', {className: 'toc-group'},
        el('a', {className: 'toc-tag', href: '#schemas', text: 'Schemas'}),
        el('ul', null, schemas.map(function (n) {
          return el('li', null, el('a', {href: '#schema-' + slug(n), text: n}));
        }))) : null);
  }

  function securitySchemesNode(doc) {
    var schemes = (doc.components && doc.components.securitySchemes) || {};
    var names = Object.keys(schemes);
    if (!names.length) {
      return null;
    }
    return el('section', {className: 'group', id: 'security'},
      el('h2', {text: 'Authentication'}),
      names.map(function (n) {
        var s = deref(doc, schemes[n]);
        var what = [s.type, s.scheme, s.bearerFormat, s.in ? 'in ' + s.in : null, s.name]
          .filter(Boolean).join(', ');
        return el('div', {className: 'scheme', id: 'security-' + slug(n)},
          el('h3', null, el('code', {text: n}), ' ', el('span', {className: 'type', text: what})),
          markdown(s.description));
      }));
  }

  function schemasNode(doc) {
    var schemas = (doc.components && doc.components.schemas) || {};
    var names = Object.keys(schemas);
    if (!names.length) {
      return null;
    }
    return el('section', {className: 'group', id: 'schemas'},
      el('h2', {text: 'Schemas'}),
      names.map(function (n) {
        var ref = '#/components/schemas/' + n.split('~').join('~0').split('/').join('~1');
        return el('section', {className: 'component', id: 'schema-' + slug(n), 'data-schema': n},
          el('h3', null, el('code', {text: n})),
          schemaBody(doc, schemas[n], 1, [ref]));
      }));
  }

  function render(doc) {
    var ops = operations(doc);
    var gs = groups(doc, ops);
    var main = el('main', {className: 'content'},
      headerNode(doc),
      securitySchemesNode(doc),
      gs.map(function (g) {
        return el('section', {className: 'group', id: 'tag-' + slug(g.name)},
          el('h2', {text: g.name}),
          markdown(g.description),
          g.ops.map(function (o) { return operationNode(doc, o.path, o.method, o.item, o.op); }));
      }),
      schemasNode(doc));
    var app = document.getElementById('app');
    app.textContent = '';
    app.appendChild(el('div', {className: 'layout'}, navNode(gs, doc), main));
    app.setAttribute('data-state', 'ready');
    app.setAttribute('data-operations', String(ops.length));
    document.title = ((doc.info && doc.info.title) || 'API') + ' reference';
    if (location.hash.length > 1) {
      var target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
      if (target) {
        target.scrollIntoView();
      }
    }
  }

  function fail(message) {
    var app = document.getElementById('app');
    app.textContent = '';
    app.appendChild(el('p', {className: 'status error', role: 'alert'},
      'Could not render ', el('a', {href: 'openapi.json', text: 'openapi.json'}), ': ' + message));
    app.setAttribute('data-state', 'error');
  }

  function start() {
    fetch('openapi.json', {credentials: 'same-origin', headers: {Accept: 'application/json'}})
      .then(function (r) {
        if (!r.ok) {
          throw new Error('HTTP ' + r.status);
        }
        return r.json();
      })
      .then(function (doc) {
        if (!doc || typeof doc !== 'object' || typeof doc.paths !== 'object') {
          throw new Error('not an OpenAPI document');
        }
        render(doc);
      })
      .catch(function (e) { fail(e && e.message ? e.message : String(e)); });
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
}());
