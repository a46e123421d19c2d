export default ({ action }, { logger }) => {
	action('articles.items.create', ({ key }) => {
		logger.info(`audit-hook: article ${key} created`);
	});
};
