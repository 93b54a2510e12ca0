// Huddle's service worker: shows the alerts the server pushes (Web Push) while no
// Huddle tab is looking, and opens the right room when one is clicked.
//
// Payloads (the server's plaintext JSON):
//   {"kind":"alert","seq":7,"title":"…","body":"…","room":"lobby","offset":12,"url":null,"tag":"huddle-alert-7"}
//   {"kind":"read","seq":7}   every notification up to seq 7 was read on another device
//
// A tab that is open shows its own notification for the same alert with the same tag
// (`huddle-alert-<seq>`, in frontend/src/notify.rs), so the two replace each other.
'use strict';

self.addEventListener('install', () => {
  // A new version takes over at once: it has no caches to migrate.
  self.skipWaiting();
});

self.addEventListener('activate', (event) => {
  event.waitUntil(self.clients.claim());
});

/** The hash of an alert's room (and message), as frontend/src/route.rs builds it. */
function hashFor(room, offset) {
  const name = Array.from(new TextEncoder().encode(room), (b) => {
    const c = String.fromCharCode(b);
    return /[A-Za-z0-9\-._~]/.test(c) ? c : '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }).join('');
  return '#/r/' + name + (Number.isInteger(offset) ? '/' + offset : '');
}

/** Only web addresses are opened: an alert's url comes from an application. */
function webUrl(url) {
  return typeof url === 'string' && /^https?:\/\//i.test(url.trim()) ? url : null;
}

self.addEventListener('push', (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (e) {
    return;
  }
  if (data.kind === 'alert' && Number.isInteger(data.seq)) {
    const tag = typeof data.tag === 'string' ? data.tag : 'huddle-alert-' + data.seq;
    event.waitUntil(
      self.registration.showNotification(String(data.title || 'Huddle'), {
        body: String(data.body || ''),
        tag,
        data: { seq: data.seq, room: data.room ?? null, offset: data.offset ?? null, url: data.url ?? null },
      }),
    );
  } else if (data.kind === 'read' && Number.isInteger(data.seq)) {
    // Read elsewhere: nothing left to tell.
    event.waitUntil(
      self.registration.getNotifications().then((shown) => {
        for (const n of shown) {
          if (n.data && Number.isInteger(n.data.seq) && n.data.seq <= data.seq) {
            n.close();
          }
        }
      }),
    );
  }
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const data = event.notification.data || {};
  const url = webUrl(data.url);
  const hash = typeof data.room === 'string' ? hashFor(data.room, data.offset) : null;
  event.waitUntil(
    (async () => {
      if (url) {
        return self.clients.openWindow(url);
      }
      const tabs = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
      const tab = tabs.find((c) => new URL(c.url).origin === self.location.origin);
      if (tab) {
        // The tab goes to the room itself (frontend/src/push.rs listens).
        await tab.focus();
        if (hash) {
          tab.postMessage({ type: 'huddle-open', hash });
        }
        return tab;
      }
      return self.clients.openWindow('/' + (hash || ''));
    })(),
  );
});
