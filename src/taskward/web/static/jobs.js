// jobs.js: the job lists (selection, bulk actions). Served with the pages; no inline script.
"use strict";
