/**
 * OHIF Viewer 3.12 `app-config.js` for Lightbox's DICOMweb root (README "DICOMweb"). Replace
 * http://localhost:8080/dicom-web with yours: a same-origin path such as '/dicom-web' behind a proxy
 * that serves both, or another origin listed in LIGHTBOX_CORS_ORIGINS. With auth on, open
 * /viewer?StudyInstanceUIDs=<uid>&token=<share token>: OHIF sends it as Authorization: Bearer.
 * tests/e2e/test_ohif.py runs OHIF with this very file, its root swapped for the test server's.
 */
window.config = {
  routerBasename: '/',
  extensions: [],
  modes: [],
  showStudyList: true,
  defaultDataSourceName: 'lightbox',
  dataSources: [
    {
      namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
      sourceName: 'lightbox',
      configuration: {
        friendlyName: 'Lightbox',
        name: 'lightbox',
        qidoRoot: 'http://localhost:8080/dicom-web',
        wadoRoot: 'http://localhost:8080/dicom-web',
        wadoUriRoot: 'http://localhost:8080/dicom-web/wado',
        qidoSupportsIncludeField: true,
        supportsFuzzyMatching: false,
        supportsWildcard: true,
        imageRendering: 'wadors',
        thumbnailRendering: 'thumbnail',
        enableStudyLazyLoad: true,
        omitQuotationForMultipartRequest: true,
        bulkDataURI: { enabled: true },
      },
    },
  ],
};
