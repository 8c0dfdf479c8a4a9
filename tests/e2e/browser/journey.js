// A visitor's journey as a site would write it: analytics.js loads its settings from
// leadflow (cdnURL) and the calls below, made before it has loaded, are buffered and sent.
// The test sets window.LEADFLOW_TEST = {writeKey, cdnURL, batching} before the page runs:
// with batching, analytics.js queues the events and posts them together to {apiHost}/b.
(function () {
  "use strict";
  var config = window.LEADFLOW_TEST;
  var report = { loaded: false, loadError: null, userAgent: navigator.userAgent };
  window.leadflowReport = report;

  var options = {};
  if (config.batching) {
    options.integrations = {
      "Segment.io": {
        deliveryStrategy: { strategy: "batching", config: { size: 3, timeout: 2000 } },
      },
    };
  }
  var analytics = window.AnalyticsNext.AnalyticsBrowser.load(
    { writeKey: config.writeKey, cdnURL: config.cdnURL },
    options
  );

  // Settles once analytics.js has loaded its settings, or failed to.
  window.leadflowLoaded = analytics.then(
    function () {
      report.loaded = true;
    },
    function (error) {
      report.loadError = String((error && error.message) || error);
    }
  );

  function sent(ctx) {
    var failed = ctx.failedDelivery();
    return {
      type: ctx.event.type,
      messageId: ctx.event.messageId,
      anonymousId: ctx.event.anonymousId,
      userId: ctx.event.userId || null,
      failed: failed ? String(failed.reason) : null,
    };
  }

  // Settles once each call has been handed to the Segment.io destination: delivered (or
  // failed for good) with the default strategy, queued with batching.
  window.leadflowJourney = Promise.all([
    analytics.page("Pricing", { plan: "growth" }),
    analytics.identify("u-42", {
      email: "Jane.Doe@Acme.com",
      name: "Jane Doe",
      company: "Acme",
    }),
    analytics.track("Demo Requested", { seats: 5 }),
  ]).then(function (contexts) {
    return contexts.map(sent);
  });
})();
