/*
 * bulk-invite: the admin's page (served at /admin with a strict CSP: no inline code, nothing
 * from outside the service). Plain ES2020, no framework, no build step.
 *
 * Sections, top to bottom:
 *   labels & state      what the page shows for API values, and what it remembers
 *   DOM helpers         el(): builds elements; data goes in as text, never as HTML
 *   messages            the #message live region (role=status; errors inside role=alert)
 *   session             workspace + token, in sessionStorage only
 *   API client          api()/apiJson(): bearer auth, JSON errors turned into sentences
 *   downloads           an authenticated GET saved as a file through an object URL
 *   sign in / out
 *   tabs                Users / Add users / API tokens / Settings / Webhooks, arrow keys move
 *   users view          member table, filter, paging, per-member actions, copy link
 *   history panel       one member's timeline in a dialog, newest first, a page at a time
 *   tokens view         the workspace's tokens; revoking the one this page uses asks first
 *   webhooks view       endpoints, adding one (its secret shown once), test, log, replay, enable
 *   add users view      template, file picker + drop zone, dry run / upload
 *   imports view        one card per import, ETA from the rate between polls
 *   problems            streaming CSV parser of the results file, table of rows not invited
 *   poller              every second while an import is running or has emails pending
 */
'use strict';

(() => {
  // ---------------------------------------------------------------- labels & state

  const API_ROOT = '/api/v1/workspaces/';
  const SESSION_KEY = 'bulk-invite.admin-session';
  const POLL_MS = 1000;
  const POLL_MAX_BACKOFF_MS = 15000;
  const MEMBERS_PAGE = 100;
  const IMPORTS_PAGE = 20;
  const PROBLEMS_SHOWN = 500;
  const ETA_WINDOW_MS = 20000;
  const NETWORK_MESSAGE = 'The service did not answer; check your connection';

  const MEMBER_STATUS = {
    invited: 'Invited',
    requested: 'Requested',
    active: 'Active',
    archived: 'Archived',
  };
  const EMAIL_STATUS = {
    pending: 'Pending',
    sending: 'Sending',
    sent: 'Sent',
    failed: 'Failed',
    cancelled: 'Cancelled',
    bounced: 'Bounced',
    complained: 'Complained',
  };
  /** Why a member's address gets no more emails, as the suppressed badge's tooltip says it. */
  const SUPPRESSED = {
    bounced: 'An email to this address bounced: no resend or reminder goes to it until the address is corrected or unsuppressed',
    complained: 'This address reported an email as abuse: no resend or reminder goes to it until the address is corrected or unsuppressed',
  };
  const IMPORT_RUNNING = new Set(['queued', 'processing']);

  const state = {
    session: null, // {ws, token}
    members: { filter: '', emailFilter: '', search: '', cursor: null, seq: 0, shown: 0, typing: null },
    file: null, // the File chosen or dropped
    uploading: false,
    lastUpload: null, // {file, dryRun, key}: the key is reused only after a network failure
    imports: new Map(), // id -> {data, card, samples}
    poll: { timer: null, failures: 0, running: false },
  };

  // ---------------------------------------------------------------- DOM helpers

  const $ = (selector, root = document) => root.querySelector(selector);

  /** Builds an element; attribute values and children are set as text, never parsed as HTML. */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function setText(node, text) {
    const value = String(text);
    if (node.textContent !== value) node.textContent = value;
  }

  function capitalise(text) {
    const s = String(text || '').trim();
    return s ? s[0].toUpperCase() + s.slice(1) : s;
  }

  function plural(n, one, many) {
    return `${n} ${n === 1 ? one : many}`;
  }

  function formatBytes(bytes) {
    if (typeof bytes !== 'number' || !Number.isFinite(bytes)) return '';
    if (bytes < 1000) return `${bytes} B`;
    const units = ['kB', 'MB', 'GB'];
    let value = bytes;
    let unit = 'B';
    for (const u of units) {
      if (value < 1000) break;
      value /= 1000;
      unit = u;
    }
    return `${value.toFixed(value < 10 ? 1 : 0)} ${unit}`;
  }

  function formatTime(iso) {
    if (!iso) return '';
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
  }

  function formatDuration(seconds) {
    if (seconds < 10) return 'a few seconds';
    if (seconds < 90) return `about ${Math.round(seconds / 5) * 5} s`;
    if (seconds < 3600) return `about ${Math.round(seconds / 60)} min`;
    const hours = Math.floor(seconds / 3600);
    const minutes = Math.round((seconds % 3600) / 60);
    return `about ${hours} h ${minutes} min`;
  }

  // ---------------------------------------------------------------- messages

  const messageBox = $('#message');

  /** A result of an action, announced politely. */
  function say(text) {
    messageBox.replaceChildren(el('p', { class: 'message-info' }, text));
  }

  /** An error, announced at once (role=alert inside the status region). */
  function sayError(text) {
    messageBox.replaceChildren(el('p', { class: 'message-error', role: 'alert' }, text));
  }

  function clearMessage() {
    messageBox.replaceChildren();
  }

  // ---------------------------------------------------------------- session

  function loadSession() {
    try {
      const stored = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
      if (stored && typeof stored.ws === 'string' && typeof stored.token === 'string') return stored;
    } catch (_) {
      /* storage unavailable or corrupt: sign in again */
    }
    return null;
  }

  function saveSession(session) {
    try {
      sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
    } catch (_) {
      /* private mode without storage: the session lasts as long as the page */
    }
  }

  function forgetSession() {
    try {
      sessionStorage.removeItem(SESSION_KEY);
    } catch (_) {
      /* nothing stored */
    }
  }

  // ---------------------------------------------------------------- API client

  class ApiError extends Error {
    constructor(status, code, message, retryAfter) {
      super(message);
      this.status = status;
      this.code = code;
      this.retryAfter = retryAfter;
    }
  }

  /** A fetch of `…/workspaces/{ws}{path}` with the bearer; resolves to an OK Response. */
  async function api(path, { method = 'GET', body, headers = {}, accept = 'application/json', session = state.session } = {}) {
    if (!session) throw new ApiError(401, 'unauthorized', 'Sign in first');
    const url = API_ROOT + encodeURIComponent(session.ws) + path;
    let response;
    try {
      response = await fetch(url, {
        method,
        body,
        headers: { Authorization: `Bearer ${session.token}`, Accept: accept, ...headers },
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch (_) {
      throw new ApiError(0, 'network', NETWORK_MESSAGE);
    }
    if (!response.ok) throw await errorOf(response);
    return response;
  }

  async function apiJson(path, options) {
    const response = await api(path, options);
    try {
      return await response.json();
    } catch (_) {
      throw new ApiError(0, 'network', NETWORK_MESSAGE);
    }
  }

  /** The API's `{"error":{"code","message"}}`, or what can be said without it. */
  async function errorOf(response) {
    let code = `http_${response.status}`;
    let message = response.statusText || `status ${response.status}`;
    try {
      const body = await response.json();
      if (body && body.error) {
        if (typeof body.error.code === 'string') code = body.error.code;
        if (typeof body.error.message === 'string') message = body.error.message;
      }
    } catch (_) {
      /* not JSON: a proxy's page, say */
    }
    const retryAfter = Number(response.headers.get('Retry-After')) || null;
    return new ApiError(response.status, code, message, retryAfter);
  }

  /** An error in words for #message; a 401 outside sign-in also signs out. */
  function describe(error) {
    if (!(error instanceof ApiError)) return `Something went wrong in this page (${error && error.message})`;
    if (error.status === 0) return NETWORK_MESSAGE;
    if (error.status >= 500) return `Something went wrong on the server (${error.message})`;
    if (error.status === 401) return 'This token is not valid';
    if (error.status === 403 && (error.code === 'forbidden' || error.code === 'http_403')) {
      return `This token is not an admin's of ${state.session ? state.session.ws : 'this workspace'}`;
    }
    if (error.status === 429) {
      const wait = error.retryAfter ? ` Try again in ${plural(error.retryAfter, 'second', 'seconds')}.` : '';
      return `${capitalise(error.message)}.${wait}`.replace('..', '.');
    }
    return capitalise(error.message);
  }

  /** Shows an error; signs out when the token stopped working. */
  function report(error) {
    if (error instanceof ApiError && error.status === 401 && state.session) {
      signOut('This token is no longer valid; sign in again');
      return;
    }
    sayError(describe(error));
  }

  // ---------------------------------------------------------------- downloads

  /** GETs `path` with the bearer and saves the body as `fileName`. */
  async function download(path, fileName) {
    const response = await api(path, { accept: 'text/csv' });
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const link = el('a', { href: url, download: fileName, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  async function withBusy(button, work) {
    if (button.disabled) return;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    try {
      await work();
    } finally {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  }

  // ---------------------------------------------------------------- sign in / out

  const signinSection = $('#signin');
  const appSection = $('#app');
  const sessionBar = $('#session');

  /** Checks a token against the workspace; resolves, or rejects with the sentence to show. */
  async function verify(session) {
    try {
      await api('/members?limit=1', { session });
    } catch (error) {
      if (error instanceof ApiError) {
        if (error.status === 401) throw new Error('This token is not valid');
        if (error.status === 403) throw new Error(`This token is not an admin's of ${session.ws}`);
        if (error.status === 404) throw new Error(`No workspace ${session.ws}`);
      }
      throw new Error(describe(error));
    }
  }

  async function onSignIn(event) {
    event.preventDefault();
    const wsInput = $('#signin-workspace');
    const tokenInput = $('#signin-token');
    const ws = wsInput.value.trim();
    const token = tokenInput.value.trim();
    if (!ws) {
      sayError('Enter the workspace');
      wsInput.focus();
      return;
    }
    if (!token) {
      sayError('Enter an admin API token');
      tokenInput.focus();
      return;
    }
    const button = $('#signin-submit');
    await withBusy(button, async () => {
      say(`Checking the token for ${ws}…`);
      try {
        await verify({ ws, token });
      } catch (error) {
        sayError(error.message);
        tokenInput.focus();
        return;
      }
      tokenInput.value = '';
      saveSession({ ws, token });
      startSession({ ws, token });
      clearMessage();
    });
  }

  function startSession(session) {
    state.session = session;
    setText($('#signed-in-as'), session.ws);
    sessionBar.hidden = false;
    signinSection.hidden = true;
    appSection.hidden = false;
    document.title = `Users · ${session.ws} · bulk-invite`;
    activateTab('users', { focus: false });
    loadImports();
  }

  function signOut(why) {
    forgetSession();
    state.session = null;
    stopPolling();
    state.imports.clear();
    $('#imports').replaceChildren();
    $('#members-table tbody').replaceChildren();
    tokensBody.replaceChildren();
    webhooksBody.replaceChildren();
    closeWebhookLog();
    hideSecret();
    $('#copied-link').value = '';
    $('#copied-link-area').hidden = true;
    setText($('#signed-in-as'), '');
    sessionBar.hidden = true;
    appSection.hidden = true;
    signinSection.hidden = false;
    document.title = 'Users · bulk-invite';
    if (why) sayError(why);
    else say('Signed out');
    $('#signin-token').focus();
  }

  async function resumeSession() {
    const stored = loadSession();
    if (!stored) {
      signinSection.hidden = false;
      return;
    }
    $('#signin-workspace').value = stored.ws;
    try {
      await verify(stored);
      startSession(stored);
    } catch (error) {
      forgetSession();
      signinSection.hidden = false;
      sayError(error.message);
    }
  }

  // ---------------------------------------------------------------- tabs

  const TABS = {
    users: { tab: $('#tab-users'), panel: $('#panel-users') },
    add: { tab: $('#tab-add'), panel: $('#panel-add') },
    tokens: { tab: $('#tab-tokens'), panel: $('#panel-tokens') },
    settings: { tab: $('#tab-settings'), panel: $('#panel-settings') },
    webhooks: { tab: $('#tab-webhooks'), panel: $('#panel-webhooks') },
  };

  function activateTab(name, { focus = true } = {}) {
    for (const [key, { tab, panel }] of Object.entries(TABS)) {
      const selected = key === name;
      tab.setAttribute('aria-selected', String(selected));
      tab.tabIndex = selected ? 0 : -1;
      panel.hidden = !selected;
    }
    if (focus) TABS[name].tab.focus();
    // The users' statuses change as imports run and emails go out: show them fresh.
    if (name === 'users') loadMembers();
    if (name === 'tokens') loadTokens();
    if (name === 'settings') loadSettings();
    if (name === 'webhooks') loadWebhooks();
  }

  function onTabKey(event) {
    const names = Object.keys(TABS);
    const current = names.findIndex((n) => TABS[n].tab === event.currentTarget);
    let next = null;
    if (event.key === 'ArrowRight') next = (current + 1) % names.length;
    else if (event.key === 'ArrowLeft') next = (current - 1 + names.length) % names.length;
    else if (event.key === 'Home') next = 0;
    else if (event.key === 'End') next = names.length - 1;
    if (next === null) return;
    event.preventDefault();
    activateTab(names[next]);
  }

  // ---------------------------------------------------------------- users view

  const membersBody = $('#members-table tbody');

  /** Loads the first page (or, with `more`, the next page) of members for the filter. */
  async function loadMembers({ more = false } = {}) {
    if (!state.session) return;
    const m = state.members;
    const seq = ++m.seq;
    const query = new URLSearchParams({ limit: String(MEMBERS_PAGE) });
    if (m.filter) query.set('status', m.filter);
    if (m.emailFilter) query.set('email_status', m.emailFilter);
    if (m.search) query.set('q', m.search);
    if (more && m.cursor !== null) query.set('cursor', String(m.cursor));
    const table = $('#members-table');
    table.setAttribute('aria-busy', 'true');
    try {
      const page = await apiJson(`/members?${query}`);
      if (seq !== m.seq) return; // a newer load (filter change) has started
      const rows = (page.members || []).map(memberRow);
      if (more) membersBody.append(...rows);
      else membersBody.replaceChildren(...rows);
      m.cursor = page.next_cursor ?? null;
      m.shown = membersBody.rows.length;
      renderMembersFooter();
    } catch (error) {
      if (seq === m.seq) report(error);
    } finally {
      if (seq === m.seq) table.removeAttribute('aria-busy');
    }
  }

  /** Waits this long after the last keystroke before searching, so typing a name is one request. */
  const SEARCH_DEBOUNCE_MS = 300;

  /** Starts a search for the box's text once typing pauses (the API folds case and accents). */
  function onSearchInput(event) {
    const m = state.members;
    clearTimeout(m.typing);
    const text = event.currentTarget.value.trim();
    m.typing = setTimeout(() => searchFor(text), SEARCH_DEBOUNCE_MS);
  }

  /** Enter searches at once; Escape clears the box and lists everyone. */
  function onSearchKey(event) {
    if (event.key !== 'Enter' && event.key !== 'Escape') return;
    event.preventDefault();
    clearTimeout(state.members.typing);
    if (event.key === 'Escape') event.currentTarget.value = '';
    searchFor(event.currentTarget.value.trim());
  }

  function searchFor(text) {
    const m = state.members;
    if (text === m.search) return;
    m.search = text;
    m.cursor = null;
    loadMembers();
  }

  function renderMembersFooter() {
    const m = state.members;
    let kind = m.filter ? `${MEMBER_STATUS[m.filter].toLowerCase()} ` : '';
    if (m.emailFilter) kind += `${EMAIL_STATUS[m.emailFilter].toLowerCase()}-email `;
    const more = m.cursor === null ? '' : ' (more to load)';
    const matching = m.search ? ` matching “${m.search}”` : '';
    setText($('#members-count'), `${plural(m.shown, `${kind}member`, `${kind}members`)}${matching} shown${more}`);
    setText($('#members-empty'), m.search ? `No ${kind}members match “${m.search}”.` : 'No members to show.');
    $('#members-empty').hidden = m.shown > 0;
    $('#members-more').hidden = m.cursor === null;
  }

  function fullName(member) {
    return [member.first_name, member.last_name].filter((s) => typeof s === 'string' && s.trim()).join(' ');
  }

  function actionButton(action, text, member) {
    const who = fullName(member) || member.email;
    return el('button', { type: 'button', class: 'button-small', 'data-action': action, 'aria-label': `${text}: ${who}` }, text);
  }

  function cell(className, label, content, title = null) {
    return el('td', { class: className, 'data-label': label, role: 'cell', title }, content);
  }

  /** One `<tr>` of the members table. */
  function memberRow(member) {
    const status = String(member.status || '');
    const statusLabel = MEMBER_STATUS[status] || capitalise(status);
    const emailStatus = member.email_status ? String(member.email_status) : '';
    const emailLabel = emailStatus ? EMAIL_STATUS[emailStatus] || capitalise(emailStatus) : '—';
    const open = status === 'invited' || status === 'requested';
    const suppressed = member.suppressed ? String(member.suppressed) : '';
    const actions = [];
    if (open) {
      actions.push(actionButton('resend', 'Resend', member));
      actions.push(actionButton('copy-link', 'Copy invitation link', member));
      actions.push(actionButton('correct-email', 'Correct email…', member));
    }
    if (suppressed) actions.push(actionButton('unsuppress', 'Unsuppress', member));
    if (status === 'archived') actions.push(actionButton('unarchive', 'Unarchive', member));
    else actions.push(actionButton('archive', 'Archive', member));
    actions.push(actionButton('history', 'History', member));
    const knownStatus = Object.prototype.hasOwnProperty.call(MEMBER_STATUS, status) ? status : 'other';
    const knownEmail = Object.prototype.hasOwnProperty.call(EMAIL_STATUS, emailStatus) ? emailStatus : 'none';
    const groups = Array.isArray(member.groups) && member.groups.length ? member.groups.join(', ') : null;
    return el(
      'tr',
      { 'data-member-id': String(member.id), 'data-email': String(member.email), role: 'row' },
      // data-label names the column when a narrow screen stacks the cells (admin.css).
      cell('member-name', 'Name', fullName(member) || '—'),
      cell('member-email', 'Email', String(member.email)),
      cell('member-role', 'Role', String(member.role || ''), groups ? `Groups: ${groups}` : null),
      cell('member-status', 'Status', [
        el('span', { class: `badge badge-${knownStatus}` }, statusLabel),
        suppressed ? el('span', { class: 'badge badge-suppressed', title: SUPPRESSED[suppressed] || null }, 'Suppressed') : null,
      ]),
      cell('member-email-status', 'Email status', el('span', { class: `email-${knownEmail}` }, emailLabel)),
      cell('member-last-error', 'Last error', member.last_error ? String(member.last_error) : ''),
      cell('member-actions', 'Actions', el('div', { class: 'row-actions' }, actions)),
    );
  }

  /** Swaps a row for a fresh one, keeping keyboard focus on the same action when it is still there. */
  function replaceMemberRow(oldRow, member, action) {
    const row = memberRow(member);
    oldRow.replaceWith(row);
    const again = $(`button[data-action="${action}"]`, row) || $('button', row);
    if (again) again.focus();
  }

  async function onMemberAction(event) {
    const button = event.target.closest('button[data-action]');
    if (!button) return;
    const row = button.closest('tr[data-member-id]');
    const id = row.getAttribute('data-member-id');
    const email = row.getAttribute('data-email');
    const action = button.getAttribute('data-action');
    await withBusy(button, async () => {
      try {
        if (action === 'copy-link') {
          await copyInvitationLink(id, email);
          return;
        }
        if (action === 'history') {
          await openHistory(id, email, button);
          return;
        }
        if (action === 'correct-email') {
          openEmailDialog(row, id, email, button);
          return;
        }
        const member = await apiJson(`/members/${encodeURIComponent(id)}/${action}`, { method: 'POST' });
        replaceMemberRow(row, member, action === 'archive' ? 'unarchive' : action === 'unarchive' ? 'archive' : action);
        if (action === 'resend') say(`A new invitation link is on its way to ${email}`);
        else if (action === 'unsuppress') say(`${email} is no longer suppressed: resends and reminders reach it again`);
        else if (action === 'archive') say(`${email} is archived: their invitation links no longer work`);
        else say(`${email} is ${MEMBER_STATUS[member.status] ? MEMBER_STATUS[member.status].toLowerCase() : 'invited'} again: a new invitation link is on its way`);
      } catch (error) {
        if (error instanceof ApiError && error.status === 409) {
          sayError(`${capitalise(error.message)} (${email})`);
          refreshMemberRow(row, id);
        } else {
          report(error);
        }
      }
    });
  }

  /** What the Remind button says it does before it does it, for the current status filter. */
  function remindQuestion(filter, search) {
    let who = filter ? `every ${MEMBER_STATUS[filter].toLowerCase()} member` : 'every member who has not accepted yet';
    if (search) who += ` matching “${search}”`;
    return (
      `Send a reminder email to ${who}?\n\n` +
      'Each gets a new invitation link, so expired links are renewed; the link sent earlier keeps working. ' +
      'Members reminded recently or the most times allowed, those whose invitation has not gone out yet, and active and archived ones are skipped; ' +
      'so are those whose address bounced or complained (counted as suppressed). ' +
      'The emails go out over the next minutes.'
    );
  }

  /** Reminds the members the list shows (status filter and search), after asking; says how many
   *  were reminded. */
  async function remindMembers(button) {
    const filter = state.members.filter;
    const search = state.members.search;
    if (filter === 'active' || filter === 'archived') return;
    if (!window.confirm(remindQuestion(filter, search))) return;
    await withBusy(button, async () => {
      try {
        const chosen = {};
        if (filter) chosen.status = filter;
        if (state.members.emailFilter) chosen.email_status = state.members.emailFilter;
        if (search) chosen.q = search;
        const body = JSON.stringify(chosen);
        const done = await apiJson('/members/remind', { method: 'POST', body, headers: { 'Content-Type': 'application/json' } });
        const suppressed = Number(done.suppressed) || 0;
        const why = suppressed ? ' (their address bounced or complained: correct it or unsuppress it to reach them)' : '';
        say(`${plural(Number(done.reminded) || 0, 'member', 'members')} reminded, ${Number(done.skipped) || 0} skipped, ${suppressed} suppressed${why}`);
        loadMembers();
      } catch (error) {
        report(error);
      }
    });
  }

  /** Remind only makes sense where the filter can show members who have not accepted. */
  function renderRemindButton() {
    const filter = state.members.filter;
    $('#members-remind').hidden = filter === 'active' || filter === 'archived';
  }

  async function refreshMemberRow(row, id) {
    try {
      const member = await apiJson(`/members/${encodeURIComponent(id)}`);
      if (row.isConnected) row.replaceWith(memberRow(member));
    } catch (_) {
      /* the message already says what went wrong */
    }
  }

  /** Gets a fresh link, copies it when the clipboard allows, and always shows it in #copied-link. */
  async function copyInvitationLink(id, email) {
    let link;
    try {
      link = await apiJson(`/members/${encodeURIComponent(id)}/invitation-link`, { method: 'POST' });
    } catch (error) {
      if (error instanceof ApiError && error.status === 403 && error.code !== 'forbidden') {
        sayError('Copying links is not offered on this edition');
        return;
      }
      throw error;
    }
    const url = String(link.url);
    const until = link.expires_at ? ` It works until ${formatTime(link.expires_at)}.` : '';
    const area = $('#copied-link-area');
    const input = $('#copied-link');
    setText($('label[for="copied-link"]'), `Invitation link for ${email}`);
    input.value = url;
    area.hidden = false;
    let copied = false;
    if (navigator.clipboard && typeof navigator.clipboard.writeText === 'function') {
      try {
        await navigator.clipboard.writeText(url);
        copied = true;
      } catch (_) {
        copied = false;
      }
    }
    if (copied) {
      say(`Invitation link for ${email} copied to the clipboard.${until}`);
    } else {
      say(`The invitation link for ${email} is in the box below, selected: copy it with Ctrl+C (⌘C on a Mac).${until}`);
      input.focus();
      input.select();
    }
  }

  // ---------------------------------------------------------------- add users view

  const fileInput = $('#upload-file');
  const dropZone = $('#drop-zone');

  function chooseFile(file) {
    state.file = file || null;
    setText($('#chosen-file'), file ? `Chosen: ${file.name} (${formatBytes(file.size)})` : 'No file chosen');
    dropZone.classList.toggle('has-file', Boolean(file));
  }

  function onDrag(event) {
    if (!event.dataTransfer || !Array.from(event.dataTransfer.types || []).includes('Files')) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = 'copy';
    dropZone.classList.add('dragging');
  }

  function onDrop(event) {
    event.preventDefault();
    dropZone.classList.remove('dragging');
    const files = event.dataTransfer && event.dataTransfer.files;
    if (!files || files.length === 0) return;
    if (files.length > 1) say(`Only one file at a time: ${files[0].name} is chosen`);
    try {
      fileInput.files = files; // keeps the input and the drop in step where browsers allow it
    } catch (_) {
      /* older browsers: state.file is enough */
    }
    chooseFile(files[0]);
  }

  async function onTemplate(event) {
    await withBusy(event.currentTarget, async () => {
      try {
        await download('/imports/template', 'bulk-invite-template.csv');
        say('The template bulk-invite-template.csv is downloaded');
      } catch (error) {
        report(error);
      }
    });
  }

  function randomKey() {
    if (window.crypto && typeof window.crypto.randomUUID === 'function') return window.crypto.randomUUID();
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  /** POSTs the chosen file as multipart field `file`; a dry run when `dryRun`. */
  async function upload(dryRun) {
    const file = state.file || (fileInput.files && fileInput.files[0]);
    if (!file) {
      sayError('Choose a file first');
      fileInput.focus();
      return;
    }
    if (state.uploading) {
      say('An upload is on its way already');
      return;
    }
    // The same key again only if the last attempt of this file never got an answer.
    const last = state.lastUpload;
    const key = last && last.file === file && last.dryRun === dryRun ? last.key : randomKey();
    state.lastUpload = { file, dryRun, key };
    const form = new FormData();
    form.append('file', file, file.name);
    const buttons = [$('#dry-run-button'), $('#upload-button')];
    state.uploading = true;
    buttons.forEach((b) => b.setAttribute('aria-disabled', 'true'));
    say(dryRun ? `Sending ${file.name} for a dry run…` : `Uploading ${file.name}…`);
    try {
      const imported = await apiJson(`/imports${dryRun ? '?dry_run=true' : ''}`, {
        method: 'POST',
        body: form,
        headers: { 'Idempotency-Key': key },
      });
      state.lastUpload = null;
      upsertImport(imported);
      schedulePoll(0);
      const card = state.imports.get(Number(imported.id));
      if (card) card.card.scrollIntoView({ block: 'nearest' });
      say(
        dryRun
          ? `${file.name} is being checked (dry run, import ${imported.id}): nobody is invited`
          : `${file.name} is uploaded (import ${imported.id}): its rows are being invited`,
      );
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 0) state.lastUpload = null;
      report(error);
    } finally {
      state.uploading = false;
      buttons.forEach((b) => b.removeAttribute('aria-disabled'));
    }
  }

  // ---------------------------------------------------------------- imports view

  const importsBox = $('#imports');

  async function loadImports() {
    try {
      const page = await apiJson(`/imports?limit=${IMPORTS_PAGE}`);
      for (const imported of page.imports || []) upsertImport(imported, { quiet: true });
      renderImportsEmpty();
      schedulePoll(POLL_MS);
    } catch (error) {
      report(error);
    }
  }

  function renderImportsEmpty() {
    $('#imports-empty').hidden = state.imports.size > 0;
  }

  function isActive(data) {
    return IMPORT_RUNNING.has(data.status) || Number(data.emails && data.emails.pending) > 0;
  }

  /** Adds or updates the card of an import; says so when one finishes (unless `quiet`). */
  function upsertImport(data, { quiet = false } = {}) {
    const id = Number(data.id);
    let entry = state.imports.get(id);
    if (!entry) {
      entry = { data, card: importCard(data), samples: [] };
      state.imports.set(id, entry);
      insertCard(id, entry.card);
    } else if (!quiet && entry.data.status !== data.status && !IMPORT_RUNNING.has(data.status)) {
      announceFinished(data);
    }
    entry.data = data;
    recordSample(entry);
    updateImportCard(entry);
    renderImportsEmpty();
  }

  function insertCard(id, card) {
    const later = Array.from(importsBox.children).find((c) => Number(c.getAttribute('data-import-id')) < id);
    importsBox.insertBefore(card, later || null);
  }

  function announceFinished(data) {
    const name = data.file_name || `import ${data.id}`;
    const r = data.rows || {};
    if (data.status === 'failed') {
      sayError(`Import of ${name} failed: ${data.error || 'no reason given'}`);
    } else if (data.dry_run) {
      say(`Dry run of ${name} done: ${r.invited} would be invited, ${r.skipped} skipped, ${r.invalid} invalid`);
    } else {
      say(`Import of ${name} done: ${r.invited} invited, ${r.skipped} skipped, ${r.invalid} invalid`);
    }
  }

  function countItem(label, className) {
    return el('div', { class: 'count' }, el('dt', {}, label), el('dd', { class: className }, '0'));
  }

  /** The skeleton of one import's card; `updateImportCard` fills in the numbers. */
  function importCard(data) {
    const id = Number(data.id);
    const prefix = `import-${id}`;
    const card = el('article', { class: 'import', 'data-import-id': String(id), 'aria-labelledby': `${prefix}-title` });
    const head = el(
      'div',
      { class: 'import-head' },
      el('h3', { id: `${prefix}-title`, class: 'import-title' }, String(data.file_name || `Import ${id}`)),
      data.dry_run ? el('span', { class: 'badge badge-dry import-dry-run' }, 'Dry run') : null,
      el('span', { class: 'badge import-status' }, ''),
    );
    const size = formatBytes(data.file_size);
    const meta = el('p', { class: 'import-meta' }, `Import ${id} · uploaded ${formatTime(data.created_at)}${size ? ` · ${size}` : ''}`);
    const rowsProgress = el(
      'div',
      { class: 'progress-line' },
      el('label', { for: `${prefix}-progress` }, 'Rows'),
      el('progress', { id: `${prefix}-progress`, class: 'import-progress', max: '1' }),
      el('span', { class: 'progress-text' }, el('span', { class: 'rows-processed' }, '0'), ' of ', el('span', { class: 'rows-total' }, '0'), ' processed'),
    );
    const emailProgress = data.dry_run
      ? null
      : el(
          'div',
          { class: 'progress-line' },
          el('label', { for: `${prefix}-emails` }, 'Emails'),
          el('progress', { id: `${prefix}-emails`, class: 'email-progress', max: '1', value: '0' }),
          el('span', { class: 'progress-text email-progress-text' }, ''),
        );
    const counts = el(
      'dl',
      { class: 'import-counts' },
      countItem(data.dry_run ? 'Would be invited' : 'Invited', 'rows-invited'),
      countItem('Skipped', 'rows-skipped'),
      countItem('Invalid', 'rows-invalid'),
      countItem('Emails sent', 'emails-sent'),
      countItem('Emails pending', 'emails-pending'),
      countItem('Emails failed', 'emails-failed'),
      el('div', { class: 'count count-eta' }, el('dt', {}, 'Time left'), el('dd', { class: 'import-eta' }, '—')),
    );
    const actions = el(
      'div',
      { class: 'import-actions' },
      el('button', { type: 'button', 'data-action': 'results' }, 'Download results'),
      el('button', { type: 'button', 'data-action': 'problems', 'aria-expanded': 'false', 'aria-controls': `${prefix}-problems` }, 'Show problems'),
    );
    card.append(
      head,
      meta,
      rowsProgress,
      emailProgress,
      counts,
      el('p', { class: 'import-error', hidden: true }),
      el('div', { class: 'import-warnings', hidden: true }, el('h4', {}, 'Warnings'), el('ul', {})),
      actions,
      el('div', { id: `${prefix}-problems`, class: 'problems-area', hidden: true }),
    );
    return card;
  }

  function num(value) {
    const n = Number(value);
    return Number.isFinite(n) ? n : 0;
  }

  /** Puts the import's current numbers, status, ETA, warnings and buttons on its card. */
  function updateImportCard(entry) {
    const { data, card } = entry;
    const rows = data.rows || {};
    const emails = data.emails || {};
    const status = String(data.status || '');
    const statusBadge = $('.import-status', card);
    setText(statusBadge, status);
    statusBadge.className = `badge import-status status-${IMPORT_RUNNING.has(status) || status === 'completed' || status === 'failed' ? status : 'other'}`;

    const total = num(rows.total);
    const processed = num(rows.processed);
    setText($('.rows-processed', card), processed);
    setText($('.rows-total', card), total);
    for (const key of ['invited', 'skipped', 'invalid']) setText($(`.rows-${key}`, card), num(rows[key]));
    for (const key of ['sent', 'pending', 'failed']) setText($(`.emails-${key}`, card), num(emails[key]));

    const progress = $('.import-progress', card);
    if (status === 'completed' || status === 'failed' || status === 'cancelled') {
      const max = Math.max(total, processed, 1);
      progress.max = max;
      progress.value = status === 'completed' ? max : Math.min(processed, max);
    } else if (total > 0) {
      progress.max = total;
      progress.value = Math.min(processed, total);
    } else {
      progress.removeAttribute('value'); // indeterminate until the rows are counted
    }

    const emailBar = $('.email-progress', card);
    if (emailBar) {
      const queued = num(emails.sent) + num(emails.pending) + num(emails.failed);
      emailBar.max = Math.max(queued, 1);
      emailBar.value = queued ? num(emails.sent) + num(emails.failed) : 0;
      setText($('.email-progress-text', card), queued ? `${num(emails.sent)} of ${queued} sent` : 'none queued yet');
    }

    setText($('.import-eta', card), eta(entry));

    const errorBox = $('.import-error', card);
    errorBox.hidden = !data.error;
    setText(errorBox, data.error ? `The file could not be imported: ${data.error}` : '');

    const warnings = Array.isArray(data.warnings) ? data.warnings.map(String) : [];
    const warningsBox = $('.import-warnings', card);
    warningsBox.hidden = warnings.length === 0;
    const list = $('ul', warningsBox);
    if (list.children.length !== warnings.length || warnings.some((w, i) => list.children[i].textContent !== w)) {
      list.replaceChildren(...warnings.map((w) => el('li', {}, w)));
    }

    const actions = $('.import-actions', card);
    toggleAction(actions, 'retry', num(emails.failed) > 0, () =>
      el('button', { type: 'button', 'data-action': 'retry', class: 'button-primary' }, 'Retry failed sends'),
    );
    const toFix = num(rows.invalid) + num(rows.skipped) > 0 && !data.upload_deleted_at;
    toggleAction(actions, 'fix', toFix, () =>
      el('button', { type: 'button', 'data-action': 'fix', title: 'The rows not invited, as uploaded, with a reason column: fix them and upload the file again' }, 'Download rows to fix'),
    );
    toggleAction(actions, 'cancel', IMPORT_RUNNING.has(status), () =>
      el('button', { type: 'button', 'data-action': 'cancel', class: 'button-danger' }, 'Cancel import'),
    );
  }

  /** Shows the action button `name` of a card while `wanted` holds (made by `make`), else removes it. */
  function toggleAction(actions, name, wanted, make) {
    const button = $(`button[data-action="${name}"]`, actions);
    if (wanted && !button) {
      actions.append(make());
    } else if (!wanted && button) {
      if (document.activeElement === button) $('button[data-action="results"]', actions).focus();
      button.remove();
    }
  }

  /** Keeps the (time, rows processed, emails sent) samples of the last seconds for the ETA. */
  function recordSample(entry) {
    const now = performance.now();
    const processed = num(entry.data.rows && entry.data.rows.processed);
    const sent = num(entry.data.emails && entry.data.emails.sent) + num(entry.data.emails && entry.data.emails.failed);
    const last = entry.samples[entry.samples.length - 1];
    if (last && (processed < last.processed || sent < last.sent)) entry.samples = [];
    entry.samples.push({ t: now, processed, sent });
    while (entry.samples.length > 2 && now - entry.samples[0].t > ETA_WINDOW_MS) entry.samples.shift();
  }

  /** Time left, from the rates between polls; "—" when unknown. */
  function eta(entry) {
    const { data, samples } = entry;
    const rows = data.rows || {};
    const emails = data.emails || {};
    const pending = num(emails.pending);
    if (data.status === 'failed' || data.status === 'cancelled') return '—';
    if (data.status === 'completed' && pending === 0) return 'Done';
    if (data.status === 'queued' || samples.length < 2) return '—';
    const first = samples[0];
    const last = samples[samples.length - 1];
    const seconds = (last.t - first.t) / 1000;
    if (seconds <= 0) return '—';
    let left = 0;
    const rowsLeft = Math.max(num(rows.total) - num(rows.processed), 0);
    if (data.status === 'processing') {
      const rowRate = (last.processed - first.processed) / seconds;
      if (num(rows.total) === 0 || rowRate <= 0) return '—';
      left = rowsLeft / rowRate;
    }
    if (!data.dry_run) {
      // Emails still to go: the pending ones and those the remaining rows will likely add.
      const share = num(rows.processed) > 0 ? num(rows.invited) / num(rows.processed) : 1;
      const emailsLeft = pending + rowsLeft * share;
      if (emailsLeft > 0) {
        const emailRate = (last.sent - first.sent) / seconds;
        if (emailRate <= 0) return '—';
        left = Math.max(left, emailsLeft / emailRate);
      }
    }
    return formatDuration(left);
  }

  async function onImportAction(event) {
    const button = event.target.closest('button[data-action]');
    if (!button) return;
    const card = button.closest('.import[data-import-id]');
    const id = Number(card.getAttribute('data-import-id'));
    const action = button.getAttribute('data-action');
    await withBusy(button, async () => {
      try {
        if (action === 'results') {
          await download(`/imports/${id}/results`, `import-${id}-results.csv`);
          say(`The results of import ${id} are downloaded as import-${id}-results.csv`);
        } else if (action === 'problems') {
          await toggleProblems(card, id, button);
        } else if (action === 'retry') {
          await retryFailed(id);
        } else if (action === 'fix') {
          await download(`/imports/${id}/results?outcome=invalid,skipped`, `import-${id}-rows-to-fix.csv`);
          say(`The rows of import ${id} not invited are downloaded as import-${id}-rows-to-fix.csv: fix them and upload that file again`);
        } else if (action === 'cancel') {
          await cancelImport(id, card);
        }
      } catch (error) {
        report(error);
      }
    });
  }

  async function cancelImport(id, card) {
    const name = $('.import-title', card).textContent;
    const question = `Cancel the import of ${name}? No more rows are applied and its unsent emails are cancelled; people already invited stay invited.`;
    if (!window.confirm(question)) return;
    const data = await apiJson(`/imports/${id}/cancel`, { method: 'POST' });
    const r = data.rows || {};
    say(`Import of ${name} cancelled: ${num(r.invited)} invited, ${num(data.emails && data.emails.sent)} emails sent before the cancel`);
    upsertImport(data, { quiet: true });
  }

  async function retryFailed(id) {
    const answer = await apiJson(`/imports/${id}/retry`, { method: 'POST' });
    const n = num(answer.requeued);
    say(n === 1 ? '1 send queued again' : `${n} sends queued again`);
    const fresh = await apiJson(`/imports/${id}`);
    upsertImport(fresh, { quiet: true });
    schedulePoll(POLL_MS);
  }

  // ---------------------------------------------------------------- problems

  /**
   * An RFC 4180 CSV parser fed in chunks: quoted fields, doubled quotes, commas and line breaks
   * inside quotes, CRLF or LF. Calls `onRow(fields)` per record; `onRow` returning false stops it.
   */
  class CsvReader {
    constructor(onRow) {
      this.onRow = onRow;
      this.field = '';
      this.row = [];
      this.inQuotes = false;
      this.quoteJustClosed = false;
      this.skipLf = false;
      this.stopped = false;
    }

    push(text) {
      for (let i = 0; i < text.length && !this.stopped; i += 1) {
        const c = text[i];
        if (this.skipLf) {
          this.skipLf = false;
          if (c === '\n') continue;
        }
        if (this.inQuotes) {
          if (c === '"') {
            this.inQuotes = false;
            this.quoteJustClosed = true;
          } else {
            this.field += c;
          }
          continue;
        }
        if (c === '"') {
          if (this.quoteJustClosed) {
            this.field += '"'; // a doubled quote inside a quoted field
            this.inQuotes = true;
          } else if (this.field === '') {
            this.inQuotes = true;
          } else {
            this.field += c; // a stray quote in an unquoted field: kept as text
          }
          this.quoteJustClosed = false;
          continue;
        }
        this.quoteJustClosed = false;
        if (c === ',') {
          this.endField();
        } else if (c === '\n' || c === '\r') {
          this.endField();
          this.endRow();
          this.skipLf = c === '\r';
        } else {
          this.field += c;
        }
      }
    }

    end() {
      if (this.stopped) return;
      if (this.field !== '' || this.row.length > 0 || this.inQuotes) {
        this.endField();
        this.endRow();
      }
    }

    endField() {
      this.row.push(this.field);
      this.field = '';
    }

    endRow() {
      const row = this.row;
      this.row = [];
      if (row.length === 1 && row[0] === '') return; // an empty line
      if (this.onRow(row) === false) this.stopped = true;
    }
  }

  /** Reads the results CSV as it streams, keeping the first rows whose outcome is not `invited`. */
  async function fetchProblems(id) {
    const response = await api(`/imports/${id}/results`, { accept: 'text/csv' });
    const problems = [];
    let columns = null;
    let truncated = false;
    const reader = new CsvReader((fields) => {
      if (!columns) {
        columns = Object.fromEntries(fields.map((name, i) => [name.trim().toLowerCase(), i]));
        return true;
      }
      const get = (name) => (columns[name] === undefined ? '' : fields[columns[name]] ?? '');
      if (get('outcome') === 'invited') return true;
      if (problems.length >= PROBLEMS_SHOWN) {
        truncated = true;
        return false;
      }
      problems.push({ row: get('row'), email: get('email'), outcome: get('outcome'), reason: get('reason') });
      return true;
    });
    const decoder = new TextDecoder('utf-8');
    if (response.body && response.body.getReader) {
      const stream = response.body.getReader();
      for (;;) {
        const { done, value } = await stream.read();
        if (done) break;
        reader.push(decoder.decode(value, { stream: true }));
        if (reader.stopped) {
          stream.cancel().catch(() => {});
          break;
        }
      }
      if (!reader.stopped) reader.push(decoder.decode());
    } else {
      reader.push(await response.text());
    }
    reader.end();
    return { problems, truncated };
  }

  function problemsTable(id, { problems, truncated }, data) {
    const notInvited = num(data.rows && data.rows.skipped) + num(data.rows && data.rows.invalid);
    const caption = truncated
      ? `The first ${problems.length} of ${notInvited} rows not ${data.dry_run ? 'to be ' : ''}invited (download the results for all of them)`
      : `Rows not ${data.dry_run ? 'to be ' : ''}invited: ${problems.length}`;
    const body = problems.length
      ? problems.map((p) =>
          el(
            'tr',
            { class: 'problem' },
            el('td', { class: 'problem-row' }, p.row),
            el('td', { class: 'problem-email' }, p.email),
            el('td', { class: 'problem-outcome' }, p.outcome),
            el('td', { class: 'problem-reason' }, p.reason),
          ),
        )
      : [el('tr', {}, el('td', { colspan: '4' }, data.dry_run ? 'Every row would be invited.' : 'Every row was invited.'))];
    return el(
      'div',
      { class: 'table-scroll', tabindex: '0', role: 'region', 'aria-label': `Problems of import ${id}` },
      el(
        'table',
        { class: 'problems data-table' },
        el('caption', {}, caption),
        el('thead', {}, el('tr', {}, ['Row', 'Email', 'Outcome', 'Reason'].map((h) => el('th', { scope: 'col' }, h)))),
        el('tbody', {}, body),
      ),
    );
  }

  async function toggleProblems(card, id, button) {
    const area = $('.problems-area', card);
    if (button.getAttribute('aria-expanded') === 'true') {
      area.hidden = true;
      area.replaceChildren();
      button.setAttribute('aria-expanded', 'false');
      setText(button, 'Show problems');
      return;
    }
    const result = await fetchProblems(id);
    const entry = state.imports.get(id);
    const data = entry ? entry.data : { rows: {} };
    const still = entry && IMPORT_RUNNING.has(data.status) ? el('p', { class: 'hint' }, 'The import is still running: rows appear here as they are processed.') : null;
    area.replaceChildren(...[still, problemsTable(id, result, data)].filter(Boolean));
    area.hidden = false;
    area.scrollIntoView({ block: 'nearest' });
    button.setAttribute('aria-expanded', 'true');
    setText(button, 'Hide problems');
    say(`${plural(result.problems.length, 'row', 'rows')} of import ${id} ${result.problems.length === 1 ? 'was' : 'were'} not ${data.dry_run ? 'to be ' : ''}invited${result.truncated ? ' (first ones shown)' : ''}`);
  }

  // ---------------------------------------------------------------- poller

  function stopPolling() {
    clearTimeout(state.poll.timer);
    state.poll.timer = null;
    state.poll.failures = 0;
  }

  /** Polls again after `delay` ms if an import is queued, processing or has emails pending. */
  function schedulePoll(delay = POLL_MS) {
    if (!state.session || state.poll.running) return;
    clearTimeout(state.poll.timer);
    state.poll.timer = null;
    const active = Array.from(state.imports.values()).some((e) => isActive(e.data));
    if (!active) return;
    state.poll.timer = setTimeout(pollOnce, delay);
  }

  async function pollOnce() {
    state.poll.timer = null;
    const ids = Array.from(state.imports.entries())
      .filter(([, e]) => isActive(e.data))
      .map(([id]) => id);
    if (ids.length === 0 || !state.session) return;
    state.poll.running = true;
    let delay = POLL_MS;
    try {
      const fresh = await Promise.all(ids.map((id) => apiJson(`/imports/${id}`)));
      fresh.forEach((data) => upsertImport(data));
      if (state.poll.failures > 0) clearMessage();
      state.poll.failures = 0;
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        state.poll.running = false;
        report(error);
        return;
      }
      state.poll.failures += 1;
      if (state.poll.failures === 1) report(error);
      delay = Math.min(POLL_MS * 2 ** state.poll.failures, POLL_MAX_BACKOFF_MS);
    }
    state.poll.running = false;
    schedulePoll(delay);
  }

  // ---------------------------------------------------------------- tokens view

  const tokensBody = $('#tokens-table tbody');

  /** Whether a listed token is the one this page signed in with (its shown prefix starts it). */
  function isCurrentToken(token) {
    const prefix = typeof token.prefix === 'string' ? token.prefix : '';
    return Boolean(state.session && prefix && state.session.token.startsWith(prefix));
  }

  function tokenState(token) {
    if (token.revoked_at) return 'Revoked';
    if (token.expires_at && new Date(token.expires_at).getTime() <= Date.now()) return 'Expired';
    return 'Active';
  }

  /** One `<tr>` of the tokens table. */
  function tokenRow(token) {
    const current = isCurrentToken(token);
    const name = String(token.name || '') || '—';
    const stateLabel = tokenState(token);
    const actions = [];
    if (stateLabel === 'Active') {
      const label = `Revoke: ${name}${current ? ' (this page\'s token)' : ''}`;
      actions.push(el('button', { type: 'button', class: 'button-small', 'data-action': 'revoke', 'aria-label': label }, 'Revoke'));
    }
    return el(
      'tr',
      { 'data-token-id': String(token.id), 'data-current': current ? 'true' : null, role: 'row' },
      cell('token-name', 'Name', current ? [name, ' ', el('span', { class: 'hint' }, '(this page)')] : name),
      cell('token-prefix', 'Starts with', el('code', {}, String(token.prefix || ''))),
      cell('token-admin', 'Admin', String(token.created_by || '')),
      cell('token-expires', 'Expires', token.expires_at ? formatTime(token.expires_at) : 'Never'),
      cell('token-last-used', 'Last used', token.last_used_at ? formatTime(token.last_used_at) : '—'),
      cell('token-state', 'State', stateLabel),
      cell('token-actions', 'Actions', el('div', { class: 'row-actions' }, actions)),
    );
  }

  async function loadTokens() {
    if (!state.session) return;
    const table = $('#tokens-table');
    table.setAttribute('aria-busy', 'true');
    try {
      const listed = await apiJson('/tokens');
      const rows = (listed.tokens || []).map(tokenRow);
      tokensBody.replaceChildren(...rows);
      $('#tokens-empty').hidden = rows.length > 0;
    } catch (error) {
      report(error);
    } finally {
      table.removeAttribute('aria-busy');
    }
  }

  async function onTokenAction(event) {
    const button = event.target.closest('button[data-action="revoke"]');
    if (!button) return;
    const row = button.closest('tr[data-token-id]');
    const id = row.getAttribute('data-token-id');
    const current = row.getAttribute('data-current') === 'true';
    if (
      current &&
      !window.confirm(
        'This is the token this page is signed in with. Revoking it signs this page out, and every token made with it stops working too. Revoke it?',
      )
    ) {
      return;
    }
    await withBusy(button, async () => {
      try {
        await api(`/tokens/${encodeURIComponent(id)}`, { method: 'DELETE' });
      } catch (error) {
        report(error);
        return;
      }
      if (current) {
        signOut('You revoked the token this page used; sign in with another one');
        return;
      }
      say('The token is revoked, with every token made with it');
      loadTokens();
    });
  }

  // ---------------------------------------------------------------- history panel

  const HISTORY_PAGE = 50;
  const historyDialog = $('#history-dialog');
  const historyList = $('#history-list');
  const history = { id: null, cursor: null, seq: 0 };

  const ATTEMPT_RESULT = { accepted: 'accepted', retried: 'failed, to be tried again', failed: 'failed for good' };
  const EMAIL_END = { ...EMAIL_STATUS, superseded: 'Superseded by a later invitation' };
  const INVITED_BY = {
    import: 'Invited by the import',
    resend: 'New invitation (resend)',
    unarchive: 'New invitation (unarchived)',
    invitation_link: 'New invitation for a copied link',
    reminder: 'Reminder',
    address_change: 'New invitation to the corrected address',
  };
  const SUPPORT_DONE = {
    resend: 'Resent',
    archive: 'Archived',
    unarchive: 'Unarchived',
    invitation_link: 'Invitation link copied',
    unsuppress: 'Unsuppressed',
    address_change: 'Address corrected',
  };

  /** What an event says, as text; `detail` (a mail server's reply) goes on a line of its own. */
  function describeEvent(event) {
    const kind = String(event.kind || '');
    switch (kind) {
      case 'imported':
        return { text: `Added by import ${event.import_id} (${event.file_name})${event.row ? `, row ${event.row}` : ''}` };
      case 'invited':
        return { text: INVITED_BY[event.cause] || `Invited${event.cause ? ` (${event.cause})` : ''}` };
      case 'email': {
        const end = EMAIL_END[event.state] || capitalise(event.state);
        return { text: `Email ${event.email_id} queued; now: ${end}, ${plural(Number(event.attempts) || 0, 'attempt', 'attempts')}` };
      }
      case 'send_attempt':
        return { text: `Email ${event.email_id} sent: ${ATTEMPT_RESULT[event.result] || String(event.result)}`, detail: event.reply };
      case 'opened':
        return { text: 'Invitation link opened for the first time' };
      case 'accepted':
        return { text: 'Invitation accepted' };
      default:
        if (SUPPORT_DONE[kind]) return { text: `${SUPPORT_DONE[kind]} by ${event.actor}` };
        return { text: capitalise(kind.replace(/_/g, ' ')) };
    }
  }

  /** One `<li>` of the history: its time, what happened and the server's reply, all as text. */
  function historyItem(event) {
    const { text, detail } = describeEvent(event);
    return el(
      'li',
      { class: `history-item history-${String(event.kind || 'other').replace(/[^a-z_]/g, '')}` },
      el('time', { datetime: String(event.at || '') }, formatTime(event.at)),
      el('span', { class: 'history-text' }, text),
      detail ? el('code', { class: 'history-reply' }, String(detail)) : null,
    );
  }

  async function loadHistory({ more = false } = {}) {
    const seq = ++history.seq;
    const params = new URLSearchParams({ limit: String(HISTORY_PAGE) });
    if (more && history.cursor) params.set('cursor', history.cursor);
    const page = await apiJson(`/members/${encodeURIComponent(history.id)}/events?${params}`);
    if (seq !== history.seq) return; // another member's history was opened meanwhile
    const items = (page.events || []).map(historyItem);
    if (more) historyList.append(...items);
    else historyList.replaceChildren(...items);
    history.cursor = page.next_cursor || null;
    $('#history-more').hidden = history.cursor === null;
    $('#history-empty').hidden = historyList.children.length > 0;
  }

  /** Opens the dialog on a member's history; focus returns to `opener` when it closes. */
  async function openHistory(id, email, opener) {
    history.id = id;
    history.cursor = null;
    setText($('#history-who'), `${email}, newest first`);
    historyList.replaceChildren();
    $('#history-more').hidden = true;
    $('#history-empty').hidden = true;
    historyDialog.addEventListener('close', () => opener.isConnected && opener.focus(), { once: true });
    historyDialog.showModal();
    await loadHistory().catch(report);
  }

  // ---------------------------------------------------------------- correcting an address

  const emailDialog = $('#email-dialog');
  const emailForm = $('#email-form');
  const correcting = { row: null, id: null };

  /** Opens the dialog to correct a member's address; focus returns to `opener` when it closes. */
  function openEmailDialog(row, id, email, opener) {
    correcting.row = row;
    correcting.id = id;
    setText($('#email-who'), `Now: ${email}`);
    $('#email-input').value = email;
    $('#email-error').hidden = true;
    emailDialog.addEventListener('close', () => opener.isConnected && opener.focus(), { once: true });
    emailDialog.showModal();
    $('#email-input').select();
  }

  /** Sends the corrected address; a refusal is said in the dialog, in the API's words. */
  async function onCorrectEmail(event) {
    event.preventDefault();
    const { row, id } = correcting;
    const body = JSON.stringify({ email: $('#email-input').value });
    await withBusy($('#email-save'), async () => {
      try {
        const member = await apiJson(`/members/${encodeURIComponent(id)}/email`, {
          method: 'POST',
          body,
          headers: { 'Content-Type': 'application/json' },
        });
        emailDialog.close();
        if (row.isConnected) replaceMemberRow(row, member, 'correct-email');
        say(`The address is corrected: a new invitation link is on its way to ${member.email}`);
      } catch (error) {
        if (error instanceof ApiError && (error.status === 409 || error.status === 422 || error.status === 429)) {
          const said = $('#email-error');
          setText(said, describe(error));
          said.hidden = false;
        } else {
          emailDialog.close();
          report(error);
        }
      }
    });
  }

  // ---------------------------------------------------------------- settings view

  /** Shows the workspace's settings in the form; the field is read-only until they are in, so
   * that nothing typed meanwhile is overwritten. */
  async function loadSettings() {
    if (!state.session) return;
    const form = $('#settings-form');
    const field = $('#settings-redirect-url');
    form.setAttribute('aria-busy', 'true');
    delete form.dataset.loaded;
    field.readOnly = true;
    try {
      const settings = await apiJson('/settings');
      field.value = settings.accept_redirect_url || '';
      form.dataset.loaded = 'true';
    } catch (error) {
      report(error);
    } finally {
      field.readOnly = false;
      form.removeAttribute('aria-busy');
    }
  }

  /** Saves the form: an empty field clears the setting. The server checks the URL and says why
   * it refuses one. */
  async function onSaveSettings(event) {
    event.preventDefault();
    const url = $('#settings-redirect-url').value.trim();
    await withBusy($('#settings-save'), async () => {
      try {
        const saved = await apiJson('/settings', {
          method: 'PUT',
          body: JSON.stringify({ accept_redirect_url: url === '' ? null : url }),
          headers: { 'Content-Type': 'application/json' },
        });
        $('#settings-redirect-url').value = saved.accept_redirect_url || '';
        say(saved.accept_redirect_url
          ? 'Saved: people who accept are sent to your application'
          : 'Saved: people who accept see this service\'s welcome page');
      } catch (error) {
        report(error);
      }
    });
  }

  // ---------------------------------------------------------------- webhooks view

  /** The event types an endpoint can subscribe to, in the service's order. `webhook.test` is
   * left out: a test event goes to the endpoint it is sent to, whatever it subscribes to. */
  const WEBHOOK_EVENTS = [
    'import.completed',
    'import.failed',
    'import.cancelled',
    'member.invited',
    'email.sent',
    'email.failed',
    'email.bounced',
    'email.complained',
    'member.accepted',
    'member.archived',
    'member.unarchived',
  ];
  const WEBHOOK_LOG_PAGE = 50;
  const DELIVERY_STATE = { pending: 'Pending', sending: 'Sending', delivered: 'Delivered', failed: 'Failed' };
  const webhooksBody = $('#webhooks-table tbody');
  const webhookLogBody = $('#webhook-log-table tbody');
  const webhookLog = { id: null, cursor: null, seq: 0 };

  /** One checkbox a type in the form. */
  function renderEventChoices() {
    const choices = WEBHOOK_EVENTS.map((name) => {
      const id = `webhook-event-${name.replace('.', '-')}`;
      return el('label', { for: id }, el('input', { type: 'checkbox', id, name: 'events', value: name }), ' ', el('code', {}, name));
    });
    $('#webhook-events').replaceChildren(...choices);
  }

  /** An endpoint's state in words: Enabled, Failing since …, or Disabled: why. */
  function webhookState(hook) {
    if (hook.disabled_at) {
      const why = hook.disabled_reason ? String(hook.disabled_reason) : `since ${formatTime(hook.disabled_at)}`;
      return { key: 'disabled', text: `Disabled: ${why}` };
    }
    if (hook.failing_since) return { key: 'failing', text: `Failing since ${formatTime(hook.failing_since)}` };
    return { key: 'enabled', text: 'Enabled' };
  }

  function webhookButton(action, text, label) {
    return el('button', { type: 'button', class: 'button-small', 'data-action': action, 'aria-label': `${text}: ${label}` }, text);
  }

  /** One `<tr>` of the endpoints table; the URL, description and events go in as text. */
  function webhookRow(hook) {
    const url = String(hook.url || '');
    const { key, text } = webhookState(hook);
    const actions = [
      webhookButton('test', 'Send test event', url),
      webhookButton('log', 'Delivery log', url),
      key === 'disabled' ? webhookButton('enable', 'Enable', url) : null,
      webhookButton('delete', 'Delete', url),
    ];
    const events = (hook.events || []).map((name) => el('code', {}, String(name)));
    return el(
      'tr',
      { 'data-webhook-id': String(hook.id), 'data-url': url, 'data-state': key, role: 'row' },
      cell('webhook-url', 'URL', el('code', {}, url)),
      cell('webhook-description', 'Description', String(hook.description || '') || '—'),
      cell('webhook-events', 'Events', events.flatMap((e, i) => (i === 0 ? [e] : [', ', e]))),
      cell(`webhook-state webhook-${key}`, 'State', text),
      cell('webhook-actions', 'Actions', el('div', { class: 'row-actions' }, actions)),
    );
  }

  async function loadWebhooks() {
    if (!state.session) return;
    const table = $('#webhooks-table');
    table.setAttribute('aria-busy', 'true');
    try {
      const listed = await apiJson('/webhooks');
      const rows = (listed.webhooks || []).map(webhookRow);
      webhooksBody.replaceChildren(...rows);
      $('#webhooks-empty').hidden = rows.length > 0;
    } catch (error) {
      report(error);
    } finally {
      table.removeAttribute('aria-busy');
    }
  }

  /** Creates the endpoint; a refusal is said under the form in the API's words, and the secret
   * is shown once, in a read-only field. */
  async function onAddWebhook(event) {
    event.preventDefault();
    const said = $('#webhook-error');
    said.hidden = true;
    const events = Array.from(document.querySelectorAll('#webhook-events input:checked'), (box) => box.value);
    const body = JSON.stringify({
      url: $('#webhook-url').value.trim(),
      description: $('#webhook-description').value.trim(),
      events,
    });
    await withBusy($('#webhook-add'), async () => {
      try {
        const created = await apiJson('/webhooks', { method: 'POST', body, headers: { 'Content-Type': 'application/json' } });
        showSecret(created);
        $('#webhook-form').reset();
        say('The endpoint is added: copy its signing secret now, it will not be shown again');
        loadWebhooks();
      } catch (error) {
        if (error instanceof ApiError && (error.status === 422 || error.status === 400)) {
          setText(said, describe(error));
          said.hidden = false;
        } else {
          report(error);
        }
      }
    });
  }

  function showSecret(created) {
    setText($('#webhook-secret-of'), String(created.url || ''));
    $('#webhook-secret').value = String(created.secret || '');
    $('#webhook-secret-area').hidden = false;
    $('#webhook-secret').select();
    $('#webhook-secret-area').scrollIntoView({ block: 'nearest' });
  }

  function hideSecret() {
    $('#webhook-secret').value = '';
    setText($('#webhook-secret-of'), '');
    $('#webhook-secret-area').hidden = true;
  }

  async function onWebhookAction(event) {
    const button = event.target.closest('button[data-action]');
    if (!button) return;
    const row = button.closest('tr[data-webhook-id]');
    const id = row.getAttribute('data-webhook-id');
    const url = row.getAttribute('data-url');
    const action = button.getAttribute('data-action');
    if (action === 'log') {
      await withBusy(button, () => openWebhookLog(id, url));
      return;
    }
    if (action === 'delete' && !window.confirm(`Delete the endpoint ${url}? Its pending deliveries and its delivery log go with it.`)) {
      return;
    }
    await withBusy(button, () => webhookAction(action, id, url));
  }

  /** Sends a test event, enables or deletes an endpoint, then shows the list afresh. */
  async function webhookAction(action, id, url) {
    const path = `/webhooks/${encodeURIComponent(id)}`;
    try {
      if (action === 'test') {
        await api(`${path}/test`, { method: 'POST' });
        say(`A test event is on its way to ${url}: the delivery log shows how it went`);
        if (webhookLog.id === id) await loadWebhookLog();
      } else if (action === 'enable') {
        await api(`${path}/enable`, { method: 'POST' });
        say(`${url} is enabled: its waiting deliveries go out again`);
      } else if (action === 'delete') {
        await api(path, { method: 'DELETE' });
        if (webhookLog.id === id) closeWebhookLog();
        say(`${url} is deleted`);
      }
    } catch (error) {
      report(error);
    }
    await loadWebhooks();
  }

  /** One `<tr>` of the delivery log, every value as text. */
  function attemptRow(attempt) {
    const result = attempt.status !== null && attempt.status !== undefined ? `HTTP ${attempt.status}` : String(attempt.error || '—');
    const stateKey = String(attempt.state || '');
    const replay = el('button', { type: 'button', class: 'button-small', 'data-action': 'replay' }, 'Replay');
    return el(
      'tr',
      { 'data-attempt-id': String(attempt.id), 'data-delivery-id': String(attempt.delivery_id), role: 'row' },
      cell('attempt-at', 'Time', el('time', { datetime: String(attempt.at || '') }, formatTime(attempt.at))),
      cell('attempt-event', 'Event', el('code', {}, String(attempt.event || ''))),
      cell('attempt-webhook-id', 'Message id', el('code', {}, String(attempt.webhook_id || ''))),
      cell('attempt-result', 'Status or error', result),
      cell('attempt-latency', 'Latency', `${Number(attempt.latency_ms) || 0} ms`),
      cell('attempt-response', 'Answer', attempt.response ? el('code', {}, String(attempt.response)) : '—'),
      cell(`attempt-state attempt-${stateKey.replace(/[^a-z]/g, '')}`, 'State', DELIVERY_STATE[stateKey] || capitalise(stateKey)),
      cell('attempt-actions', 'Actions', replay),
    );
  }

  /** Loads the newest attempts (or, with `more`, the next page) of the open log. */
  async function loadWebhookLog({ more = false } = {}) {
    const seq = ++webhookLog.seq;
    const params = new URLSearchParams({ limit: String(WEBHOOK_LOG_PAGE) });
    if (more && webhookLog.cursor) params.set('cursor', String(webhookLog.cursor));
    const page = await apiJson(`/webhooks/${encodeURIComponent(webhookLog.id)}/deliveries?${params}`);
    if (seq !== webhookLog.seq) return; // another log was opened meanwhile
    const rows = (page.attempts || []).map(attemptRow);
    if (more) webhookLogBody.append(...rows);
    else webhookLogBody.replaceChildren(...rows);
    webhookLog.cursor = page.next_cursor || null;
    $('#webhook-log-more').hidden = webhookLog.cursor === null;
    $('#webhook-log-empty').hidden = webhookLogBody.children.length > 0;
    $('#webhook-log-area').dataset.loaded = 'true';
  }

  async function openWebhookLog(id, url) {
    webhookLog.id = id;
    webhookLog.cursor = null;
    delete $('#webhook-log-area').dataset.loaded;
    setText($('#webhook-log-of'), `${url}, newest first`);
    webhookLogBody.replaceChildren();
    $('#webhook-log-more').hidden = true;
    $('#webhook-log-empty').hidden = true;
    $('#webhook-log-area').hidden = false;
    await loadWebhookLog().catch(report);
    $('#webhook-log-heading').scrollIntoView({ block: 'nearest' });
  }

  function closeWebhookLog() {
    webhookLog.id = null;
    webhookLog.seq += 1;
    webhookLogBody.replaceChildren();
    $('#webhook-log-area').hidden = true;
  }

  /** Replays a row's delivery: it goes out again with the same `webhook-id`. */
  async function onAttemptAction(event) {
    const button = event.target.closest('button[data-action="replay"]');
    if (!button) return;
    const delivery = button.closest('tr[data-delivery-id]').getAttribute('data-delivery-id');
    const path = `/webhooks/${encodeURIComponent(webhookLog.id)}/deliveries/${encodeURIComponent(delivery)}/replay`;
    await withBusy(button, async () => {
      try {
        await api(path, { method: 'POST' });
        say('The delivery is queued again, with the same message id');
        await loadWebhookLog();
      } catch (error) {
        report(error);
      }
    });
  }

  // ---------------------------------------------------------------- start

  function wire() {
    $('#signin-form').addEventListener('submit', onSignIn);
    $('#signout').addEventListener('click', () => signOut());
    for (const [name, { tab }] of Object.entries(TABS)) {
      tab.addEventListener('click', () => activateTab(name));
      tab.addEventListener('keydown', onTabKey);
    }
    $('#status-filter').addEventListener('change', (event) => {
      state.members.filter = event.currentTarget.value;
      state.members.cursor = null;
      renderRemindButton();
      loadMembers();
    });
    $('#email-status-filter').addEventListener('change', (event) => {
      state.members.emailFilter = event.currentTarget.value;
      state.members.cursor = null;
      loadMembers();
    });
    emailForm.addEventListener('submit', onCorrectEmail);
    $('#email-cancel').addEventListener('click', () => emailDialog.close());
    $('#members-remind').addEventListener('click', (event) => remindMembers(event.currentTarget));
    $('#members-search').addEventListener('input', onSearchInput);
    $('#members-search').addEventListener('keydown', onSearchKey);
    $('#members-refresh').addEventListener('click', () => loadMembers());
    $('#members-more').addEventListener('click', (event) => withBusy(event.currentTarget, () => loadMembers({ more: true })));
    membersBody.addEventListener('click', onMemberAction);
    $('#tokens-refresh').addEventListener('click', () => loadTokens());
    $('#settings-form').addEventListener('submit', onSaveSettings);
    tokensBody.addEventListener('click', onTokenAction);
    $('#webhooks-refresh').addEventListener('click', () => loadWebhooks());
    $('#webhook-form').addEventListener('submit', onAddWebhook);
    webhooksBody.addEventListener('click', onWebhookAction);
    webhookLogBody.addEventListener('click', onAttemptAction);
    $('#webhook-log-refresh').addEventListener('click', (event) => withBusy(event.currentTarget, () => loadWebhookLog().catch(report)));
    $('#webhook-log-more').addEventListener('click', (event) => withBusy(event.currentTarget, () => loadWebhookLog({ more: true }).catch(report)));
    $('#webhook-log-close').addEventListener('click', closeWebhookLog);
    $('#template-download').addEventListener('click', onTemplate);
    fileInput.addEventListener('change', () => chooseFile(fileInput.files && fileInput.files[0]));
    dropZone.addEventListener('dragenter', onDrag);
    dropZone.addEventListener('dragover', onDrag);
    dropZone.addEventListener('dragleave', () => dropZone.classList.remove('dragging'));
    dropZone.addEventListener('drop', onDrop);
    // A file dropped next to the zone must not make the browser leave the page.
    window.addEventListener('dragover', (event) => event.preventDefault());
    window.addEventListener('drop', (event) => event.preventDefault());
    $('#dry-run-button').addEventListener('click', () => upload(true));
    $('#upload-button').addEventListener('click', () => upload(false));
    importsBox.addEventListener('click', onImportAction);
    $('#history-close').addEventListener('click', () => historyDialog.close());
    $('#history-more').addEventListener('click', (event) => withBusy(event.currentTarget, () => loadHistory({ more: true }).catch(report)));
  }

  wire();
  renderEventChoices();
  state.members.filter = $('#status-filter').value;
  state.members.emailFilter = $('#email-status-filter').value;
  renderRemindButton();
  state.members.search = $('#members-search').value.trim();
  resumeSession();
})();
